"""Isaac Lab's own training flags work with the G1 tasks: ``--logger wandb`` and Hydra's
``agent.logger.backend=wandb`` (the real ``isaaclab train``, W&B offline, both runs read back)
keep W&B and the automatic stage."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HAS_SIM
from probes import TINY_STAGE, train

if not HAS_SIM:
    pytest.skip("Isaac Lab not installed (bash scripts/setup.sh installs it)", allow_module_level=True)


def _records(log: Path) -> list[dict]:
    wandb_cli = str(Path(sys.executable).with_name("wandb"))
    proc = subprocess.run([wandb_cli, "leet", "inspect", "--json", str(log)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def _history_keys(logs: list[Path]) -> set[str]:
    return {
        k for log in logs for r in _records(log) if r.get("type") == "history" for k in r["history"]["item"]
    }


@pytest.mark.parametrize(
    "flags",
    [
        ("--logger", "wandb", "--log_project_name", "g1-flag"),  # Isaac Lab's flag
        ("agent.logger.backend=wandb", "agent.wandb_project=g1-flag"),  # the same through Hydra
    ],
    ids=["logger-flag", "hydra"],
)
def test_isaaclab_train_with_wandb_logs_to_wandb_and_still_runs_the_stage(tmp_path, monkeypatch, flags):
    monkeypatch.setenv("WANDB_MODE", "offline")
    for name in ("WANDB_API_KEY", "WANDB_RUN_ID", "WANDB_ENTITY", "WANDB_USERNAME", "WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    run = train("PostConv-Velocity-Flat-G1", tmp_path, stage_args=TINY_STAGE, overrides=flags)
    said = (run / "train_output.txt").read_text()
    (run_id,) = re.findall(r"Logging to wandb project 'g1-flag', run id '(\w+)'", said)
    # the training's own W&B run: rsl_rl's writer under the announced id, the training curve in it
    (training_log,) = tmp_path.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")
    assert {"Loss/value", "Episode_Reward/upright"} <= _history_keys([training_log])
    record = json.loads((run / "postconv" / "wandb_training.json").read_text())
    assert (record["id"], record["project"]) == (run_id, "g1-flag")
    # the stage ran after training, in a W&B run of its own that joined the training's project...
    assert (run / "postconv" / "selection.json").is_file()
    selection_logs = [
        p for p in (run / "postconv" / "wandb").glob("offline-run-*/run-*.wandb") if run_id not in p.name
    ]
    assert selection_logs
    assert "selection/mean" in _history_keys(selection_logs)
    # ...and put its series into the training's run as well
    into_training = list((run / "postconv" / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert "postconv/mean" in _history_keys(into_training)
