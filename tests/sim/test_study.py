"""The selection-quality study runs end to end at a tiny size: a CPU training, the stage in Isaac
Lab, the twin's control samples, held-out worlds, judgements, tables and the plot; a rerun
reuses everything on disk. (Its numbers at this size mean nothing: the pipeline is tested.)
"""

import csv
import json
from dataclasses import replace

import pytest
from conftest import HAS_SIM

if not HAS_SIM:
    pytest.skip("Isaac Lab not installed (bash scripts/setup.sh installs it)", allow_module_level=True)

from postconv.study.analysis import BASELINES
from postconv.study.calibrate import choose, fall_rates
from postconv.study.run import POOLED, QUICK, SOURCES, run_study

pytestmark = pytest.mark.needs_sim


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    config = replace(
        QUICK, iterations=3, train_envs=16, candidates=2, envs_per_checkpoint=2, burn_in_steps=2, steps=50,
        worlds=("push=1.5@1-3", "latency=20ms,push=1@1-3"), episodes=3, seconds=0.5, ks=(0.5, 2.0), n_boot=20,
        work_dir=root / "work", results_dir=root / "results",
    )  # fmt: skip
    return config, run_study(config)


def test_the_study_writes_every_judgement_and_a_plot(tiny):
    config, paths = tiny
    rows = list(csv.DictReader(paths["judged"].open()))
    worlds = {*config.worlds, POOLED}
    assert {r["world"] for r in rows} == worlds
    assert {r["source"] for r in rows} == set(SOURCES)
    scores = {r["score"] for r in rows}
    assert set(BASELINES) <= scores
    assert {"wc[reward,k=0]", "wc[reward,k=0.5]", "wc[reward,k=2]", "wc[upright,k=2]"} <= scores
    assert paths["plot"].stat().st_size > 10_000
    tables = paths["markdown"].read_text()
    assert "| world | iteration |" in tables
    assert tables.count("\n| all |") == 2  # the Spearman and the regret tables each end pooled
    study = json.loads(paths["study"].read_text())
    assert study["survival"]["0"]["candidates"] == ["model_0", "model_2"]
    assert (config.work_dir / "stand_s0" / "postconv" / "selection.json").is_file()


def test_a_rerun_reuses_the_training_samples_and_replays(tiny):
    config, _ = tiny
    run = config.run_dir(0)
    kept = [
        *run.glob("model_*.pt"),  # the training
        *(run / "postconv" / "samples").rglob("*.npy"),  # the stage's samples
        config.work_dir / "twin_samples_s0.npz",  # the control
        *(run / "postconv" / "sim2sim" / "episodes").rglob("*.npz"),  # the replays
    ]
    before = {p: p.stat().st_mtime_ns for p in kept}
    run_study(config)
    assert {p: p.stat().st_mtime_ns for p in kept} == before


def test_calibration_grades_worlds_by_fall_rate_alone(tiny):
    config, _ = tiny
    names, rates = fall_rates(
        config.run_dir(0), ("push=2@1-3", "nominal"), checkpoints=2, episodes=2, seconds=0.5
    )
    assert names == ["model_0", "model_2"]
    assert set(rates) == {"push=2@1-3", "nominal"}
    assert all(0.0 <= r <= 1.0 for rs in rates.values() for r in rs)
    assert choose({"a": [0.1, 0.1], "b": [0.6, 0.5], "c": [0.9, 1.0]}, {"kind": ("a", "b", "c")}) == {
        "kind": "b"
    }


def test_the_tables_and_plot_are_rebuilt_from_the_judgements_alone(tiny):
    from postconv.console import wide_console
    from postconv.study.run import rewrite_results

    config, paths = tiny
    before = paths["markdown"].read_text()
    paths["markdown"].unlink()
    paths["plot"].unlink()
    rewritten = rewrite_results(config.results_dir, wide_console())
    after = rewritten["markdown"].read_text()
    # judged.csv keeps 4 significant digits: the tables' shape is the same, a last digit may move
    assert [line[:40] for line in after.splitlines()] == [line[:40] for line in before.splitlines()]
    assert rewritten["plot"].is_file()
