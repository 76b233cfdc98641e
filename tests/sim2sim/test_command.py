"""``postconv sim2sim`` on a run folder: outcomes written in the format ``postconv outcomes``
reads, the selection judged, results reused on a rerun, a damaged checkpoint skipped.

The run folder is made without Isaac Lab (``fake_runs.make_run``: small random actors, a
selection from synthetic samples): the replay and its bookkeeping are what is tested.
"""

import json

import pytest
from fake_runs import NAMES

from postconv.cli import main
from postconv.review.outcomes import read_outcomes

WORLDS = ["--worlds", "nominal", "strength=0.7"]
QUIET = ["--no-wandb", "--no-video"]
ARGS = [*WORLDS, "--episodes", "3", "--seconds", "0.4", *QUIET]


def _episodes(run):
    return {
        p: p.stat().st_mtime_ns for p in sorted((run / "postconv" / "sim2sim" / "episodes").rglob("*.npz"))
    }


def test_sim2sim_writes_outcomes_that_judge_the_selection(run_dir):
    assert main(["sim2sim", str(run_dir), *ARGS]) == 0
    out = run_dir / "postconv" / "sim2sim"
    outcomes = read_outcomes(out / "outcomes.csv", NAMES)  # the format `postconv outcomes` reads
    assert set(outcomes.trials.values()) == {3}  # one trial per episode
    assert "tracking_return[strength=0.7]" in outcomes.metrics
    assert "survived[all]" in outcomes.metrics
    agreement = json.loads((out / "agreement.json").read_text())
    judged = {(s["metric"], s["predictor"]) for s in agreement["scores"]}
    assert ("tracking_return[all]", "mean") in judged
    assert ("tracking_return[nominal]", "k=4") in judged
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["rows"]) == 2 * 4
    assert {r["world"] for r in summary["rows"]} == {"nominal", "strength=0.7"}
    episodes = (out / "episodes.csv").read_text().splitlines()
    assert len(episodes) == 1 + 2 * 4 * 3


def test_rerun_reuses_results_and_recomputes_what_is_missing(run_dir):
    assert main(["sim2sim", str(run_dir), *ARGS]) == 0
    before = _episodes(run_dir)
    first = (run_dir / "postconv" / "sim2sim" / "outcomes.csv").read_text()
    assert len(before) == 2 * 4
    lost = next(iter(before))
    lost.unlink()  # as if interrupted before this file was written
    assert main(["sim2sim", str(run_dir), *ARGS]) == 0
    after = _episodes(run_dir)
    assert {p: t for p, t in after.items() if p != lost} == {p: t for p, t in before.items() if p != lost}
    assert (run_dir / "postconv" / "sim2sim" / "outcomes.csv").read_text() == first  # recomputed to the bit
    # other episodes are other results: recomputed, not mixed in
    assert main(["sim2sim", str(run_dir), *WORLDS, "--episodes", "2", "--seconds", "0.4", *QUIET]) == 0
    assert all(after[p] != t for p, t in _episodes(run_dir).items())


def test_damaged_checkpoint_is_skipped_with_its_reason(run_dir, capsys):
    (run_dir / "model_30.pt").write_bytes(b"not a checkpoint")
    assert main(["sim2sim", str(run_dir), *ARGS]) == 0
    summary = json.loads((run_dir / "postconv" / "sim2sim" / "summary.json").read_text())
    assert "model_30" in summary["skipped"]
    assert "not a readable torch checkpoint" in summary["skipped"]["model_30"]
    assert "model_30" not in summary["checkpoints"]
    assert "skipped model_30" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--worlds", "bogus=1"], "'bogus=1' is not KEY=VALUE"),
        (["--episodes", "0"], "episodes must be >= 1"),
        (["--threads", "0"], "threads must be >= 1"),
        (["--seed", "-1"], "seed must be >= 0"),
    ],
)
def test_bad_options_fail_before_any_work(run_dir, capsys, args, message):
    assert main(["sim2sim", str(run_dir), *args]) == 2
    assert message in " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert not (run_dir / "postconv" / "sim2sim").exists()


def test_no_loadable_checkpoints_is_an_error_naming_them(run_dir, capsys):
    for name in NAMES[1:]:
        (run_dir / f"{name}.pt").write_bytes(b"")
    assert main(["sim2sim", str(run_dir), *ARGS]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "1 ranked checkpoint(s) could be loaded; sim2sim compares 2 or more (model_20:" in out


def test_a_run_without_a_selection_says_what_to_run(run_dir, capsys):
    (run_dir / "postconv" / "selection.json").unlink()
    assert main(["sim2sim", str(run_dir), *ARGS]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "no selection yet; run `postconv run" in out
