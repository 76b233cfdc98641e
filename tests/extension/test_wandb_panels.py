"""The selection on W&B as native panels: per-checkpoint series on the training-iteration axis,
W&B-drawn charts, and a chosen-policy artifact a deployment script can select on, read back
from the offline run's transaction log with wandb's own reader (``wandb leet inspect``).

The samples are the demo's synthetic ones (what the stage would produce); W&B is the real
client, offline."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from postconv.dashboard.log import ITERATION, iteration_series, log_selection
from postconv.ranking.baselines import Baselines
from postconv.ranking.config import SelectionConfig
from postconv.ranking.select import select
from postconv.storage.demo import demo_samples


@pytest.fixture
def selection():
    samples = demo_samples(0)
    pooled = select(samples, SelectionConfig(n_boot=20))
    iterations = {name: 100 * (i + 1) for i, name in enumerate(samples.names)}
    return pooled, iterations


def test_the_series_run_in_training_order_with_every_k_the_interval_and_one_chosen_mark(selection):
    pooled, iterations = selection
    rows = iteration_series(pooled, {}, iterations)
    assert [r[ITERATION] for r in rows] == sorted(iterations.values())
    assert sum(r["selection/chosen"] for r in rows) == 1
    chosen_row = next(r for r in rows if r["selection/chosen"] == 1.0)
    assert chosen_row[ITERATION] == iterations[pooled.chosen]
    for row in rows:
        for k in pooled.config.k:
            assert np.isfinite(row[f"selection/worst_case_k{k:g}"])
        primary = f"k{pooled.config.primary_k:g}"
        assert row[f"selection/ci_low_{primary}"] <= row[f"selection/ci_high_{primary}"]


def _records(log: Path) -> list[dict]:
    wandb_cli = str(Path(sys.executable).with_name("wandb"))
    proc = subprocess.run([wandb_cli, "leet", "inspect", "--json", str(log)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def _summary(log: Path) -> dict:
    wandb_cli = str(Path(sys.executable).with_name("wandb"))
    proc = subprocess.run(
        [wandb_cli, "leet", "inspect", "--summary", "--json", str(log)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["summary"]


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """A run folder for an offline W&B client with a fresh process state."""
    import wandb

    wandb.teardown()  # wandb keeps the settings of its first use in a process
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    folder = tmp_path / "2026-01-01_00-00-00"
    (folder / "postconv").mkdir(parents=True)
    return folder


def _history(logs, key: str) -> list[dict]:
    """The history rows holding ``key`` in these offline run files."""
    return [
        r["history"]["item"]
        for log in logs
        for r in _records(log)
        if r.get("type") == "history" and key in r["history"]["item"]
    ]


def _selection_logs(run_dir: Path, training_id: str | None = None) -> list[Path]:
    logs = (run_dir / "postconv" / "wandb").glob("offline-run-*/run-*.wandb")
    return sorted(log for log in logs if training_id is None or training_id not in log.name)


def test_an_offline_selection_holds_native_series_charts_and_a_selectable_artifact(selection, run_dir):
    import wandb

    pooled, iterations = selection
    policy = run_dir / "postconv" / "policy.onnx"
    policy.write_bytes(b"onnx")
    names = tuple(c.name for c in pooled.checkpoints)
    falls = np.arange(len(names))[::-1] * 2  # the last checkpoint falls least
    baselines = Baselines(names, np.array([iterations[n] for n in names]), None, falls)
    log_selection(run_dir, {}, pooled, {}, iterations, [], {"task": "demo"}, [policy], baselines=baselines)
    wandb.teardown()
    (log,) = _selection_logs(run_dir)
    records = _records(log)
    summary = _summary(log)
    assert summary["picks/falls"] == names[-1]
    assert summary["picks/last"] == names[-1]
    assert "picks/train_reward" not in summary  # no training curve given
    assert summary["chosen_by_worst_case"] == pooled.chosen_by_worst_case
    metrics = [r["metric"] for r in records if r.get("type") == "metric"]
    assert any(m.get("glob_name") == "selection/*" and m.get("step_metric") == ITERATION for m in metrics)
    history = [r["history"]["item"] for r in records if r.get("type") == "history"]
    series = [h for h in history if "selection/mean" in h]
    assert [h[ITERATION] for h in series] == sorted(iterations.values())
    assert [h["selection/chosen"] for h in series].count(1) == 1
    assert [h["selection/sim_falls"] for h in series] == [
        int(falls[names.index(n)]) for n in sorted(iterations, key=iterations.get)
    ]
    panels = {
        key
        for r in records
        if r.get("type") == "config"
        for key in r["config"].get("update", {})
        if key.startswith("_wandb.visualize.")
    }
    assert {
        "_wandb.visualize.panels/mean_vs_worst_case",
        "_wandb.visualize.panels/worst_case_by_checkpoint",
    } <= panels
    (artifact,) = [
        r["artifact"] for r in records if r.get("type") == "artifact" and r["artifact"]["type"] == "model"
    ]
    assert set(artifact["aliases"]) >= {"chosen", pooled.chosen}
    metadata = json.loads(artifact["metadata"])
    assert metadata["checkpoint"] == pooled.chosen
    assert metadata["iteration"] == iterations[pooled.chosen]
    assert metadata["k"] == pooled.config.primary_k
    assert metadata["training_run"] == str(run_dir.resolve())


TRAINING_STEPS = 700  # beyond the synthetic checkpoints' iterations (100 to 600)


def _training_run(tmp_path, run_dir: Path) -> str:
    """A training's own offline W&B run, recorded as postconv's log writer records it."""
    import wandb

    from postconv.dashboard.log import record_training_run

    run = wandb.init(project="g1-sweeps", dir=str(tmp_path), mode="offline", name=run_dir.name)
    for step in range(TRAINING_STEPS):  # as rsl_rl: step = iteration
        run.log({"Train/mean_reward": 1.0}, step=step)
    record_training_run(run_dir)
    run.finish()
    wandb.teardown()
    return run.id


def _offline_logs(folder: Path, run_id: str) -> list[Path]:
    return sorted(folder.glob(f"wandb/offline-run-*-{run_id}*/run-{run_id}.wandb"))


def test_the_selection_lands_in_the_trainings_own_run_too_and_the_two_name_each_other(
    selection, tmp_path, run_dir
):
    import wandb

    from postconv.dashboard.log import TRAINING_PREFIX

    pooled, iterations = selection
    training_id = _training_run(tmp_path, run_dir)
    ref = log_selection(run_dir, {}, pooled, {}, iterations, [], {"task": "demo"}, [])
    wandb.teardown()
    assert ref.training_dir is not None
    (training_log,) = _offline_logs(run_dir / "postconv", training_id)
    records = _records(training_log)
    axis = f"{TRAINING_PREFIX}/iteration"
    metrics = [r["metric"] for r in records if r.get("type") == "metric"]
    assert any(m.get("glob_name") == f"{TRAINING_PREFIX}/*" and m.get("step_metric") == axis for m in metrics)
    series = _history([training_log], f"{TRAINING_PREFIX}/mean")
    assert [h[axis] for h in series] == sorted(iterations.values())
    # appended after the training's own history: a synced resumed segment cannot overlap it
    assert [h["_step"] for h in series] == list(range(TRAINING_STEPS, TRAINING_STEPS + len(series)))
    assert [h[f"{TRAINING_PREFIX}/chosen"] for h in series].count(1) == 1
    # linked both ways: the training run names the selection run, the selection run the training's
    (selection_log,) = _selection_logs(run_dir, training_id)
    selection_id = selection_log.stem.removeprefix("run-")
    summary = _summary(training_log)
    assert summary[f"{TRAINING_PREFIX}/selection_run"].endswith(f"g1-sweeps/{selection_id}")
    assert summary[f"{TRAINING_PREFIX}/chosen_checkpoint"] == pooled.chosen
    (started,) = [r["run"] for r in _records(selection_log) if r.get("type") == "run"]
    assert started["config"]["update"]["training_wandb_run"] == f"g1-sweeps/{training_id}"
    assert started["project"] == "g1-sweeps"  # the selection joins the training's project


def test_outcomes_land_on_the_iteration_axis_beside_the_estimates_in_both_runs(selection, tmp_path, run_dir):
    import wandb

    from postconv.dashboard.log import TRAINING_PREFIX, log_outcomes

    pooled, iterations = selection
    training_id = _training_run(tmp_path, run_dir)
    log_selection(run_dir, {}, pooled, {}, iterations, [], {"task": "demo"}, [])
    wandb.teardown()
    means = {"success": {c.name: float(i) for i, c in enumerate(pooled.checkpoints)}}
    ref = log_outcomes(run_dir, ["metric"], [["success"]], {}, key="outcomes/table", means=means)
    wandb.teardown()
    assert ref.training_dir is not None
    in_selection = _history(_selection_logs(run_dir, training_id), "selection/outcomes/success")
    assert sorted(h[ITERATION] for h in in_selection) == sorted(iterations.values())
    assert {h[ITERATION]: h["selection/outcomes/success"] for h in in_selection} == {
        iterations[name]: value for name, value in means["success"].items()
    }
    in_training = _history(
        _offline_logs(run_dir / "postconv", training_id), f"{TRAINING_PREFIX}/outcomes/success"
    )
    assert sorted(h[f"{TRAINING_PREFIX}/iteration"] for h in in_training) == sorted(iterations.values())
    # after the selection's series in the training run, and after the selection run's own rows
    assert min(h["_step"] for h in in_training) == TRAINING_STEPS + len(iterations)
    estimates = [h["_step"] for h in _history(_selection_logs(run_dir, training_id), "selection/mean")]
    assert min(h["_step"] for h in in_selection) > max(estimates)


def test_sim2sim_media_land_in_the_selection_run_as_an_image_and_a_video(selection, tmp_path, run_dir):
    import imageio.v2 as imageio
    import wandb

    from postconv.dashboard.log import log_outcomes

    pooled, iterations = selection
    log_selection(run_dir, {}, pooled, {}, iterations, [], {"task": "demo"}, [])
    wandb.teardown()
    frames = [np.full((64, 96, 3), 20 * i, dtype=np.uint8) for i in range(10)]
    video, chart = tmp_path / "picks.mp4", tmp_path / "margins.png"
    imageio.mimwrite(video, frames, fps=25, codec="libx264", macro_block_size=16)
    imageio.imwrite(chart, frames[5])
    log_outcomes(run_dir, ["metric"], [["survived"]], {}, key="sim2sim/table",
                 images={"sim2sim/margins": chart, "sim2sim/video": video})  # fmt: skip
    wandb.teardown()
    (row,) = _history(_selection_logs(run_dir), "sim2sim/video._type")  # media keys come flattened
    assert row["sim2sim/video._type"] == "video-file"
    assert row["sim2sim/margins._type"] == "image-file"
    files = run_dir / "postconv" / "wandb"
    (logged,) = files.glob(f"offline-run-*/files/{row['sim2sim/video.path']}")
    assert logged.read_bytes() == video.read_bytes()


def test_a_pinned_training_run_id_in_the_environment_does_not_become_the_selections(
    selection, run_dir, monkeypatch
):
    """A user who pinned the training's run (``WANDB_RUN_ID``, as Isaac Lab allows) and then runs
    ``postconv run`` in the same shell gets a selection run of its own."""
    import wandb

    monkeypatch.setenv("WANDB_RUN_ID", "trainrun")
    monkeypatch.setenv("WANDB_RESUME", "allow")
    pooled, iterations = selection
    log_selection(run_dir, {}, pooled, {}, iterations, [], {"task": "demo"}, [])
    wandb.teardown()
    (log,) = _selection_logs(run_dir)
    assert "trainrun" not in log.name
