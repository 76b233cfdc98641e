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

from postconv.demo import demo_samples
from postconv.report import SelectionConfig, select
from postconv.wandb_log import ITERATION, iteration_series, log_selection


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


def test_an_offline_selection_holds_native_series_charts_and_a_selectable_artifact(
    selection, tmp_path, monkeypatch
):
    import wandb

    wandb.teardown()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    pooled, iterations = selection
    run_dir = tmp_path / "run"
    (run_dir / "postconv").mkdir(parents=True)
    policy = run_dir / "postconv" / "policy.onnx"
    policy.write_bytes(b"onnx")
    log_selection(run_dir, {}, pooled, {}, iterations, [], {"task": "demo"}, [policy])
    wandb.teardown()
    (log,) = (run_dir / "postconv" / "wandb").glob("offline-run-*/run-*.wandb")
    records = _records(log)
    metrics = [r["metric"] for r in records if r.get("type") == "metric"]
    assert any(m.get("glob_name") == "selection/*" and m.get("step_metric") == ITERATION for m in metrics)
    history = [r["history"]["item"] for r in records if r.get("type") == "history"]
    series = [h for h in history if "selection/mean" in h]
    assert [h[ITERATION] for h in series] == sorted(iterations.values())
    assert [h["selection/chosen"] for h in series].count(1) == 1
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
