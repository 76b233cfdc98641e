"""Simulator tests need the Isaac Lab stack; CI requires it (POSTCONV_REQUIRE_SIM=1)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HAS_SIM = importlib.util.find_spec("isaaclab") is not None


def pytest_configure(config):
    if not HAS_SIM and os.environ.get("POSTCONV_REQUIRE_SIM"):
        raise pytest.UsageError(
            "POSTCONV_REQUIRE_SIM is set but Isaac Lab is not installed: run bash scripts/setup.sh"
        )


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A real run folder: `isaaclab train` of the flat task, 2 iterations on 4 envs (~30 s)."""
    cwd = tmp_path_factory.mktemp("train")
    cmd = [
        str(Path(sys.executable).with_name("isaaclab")), "train", "--task", "PostConv-Velocity-Flat-G1",
        "--num_envs", "4", "--max_iterations", "2", "--device", "cpu",
        "agent.device=cpu", "agent.num_steps_per_env=8", "agent.save_interval=1",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = list((cwd / "logs" / "rsl_rl" / "g1_flat").iterdir())
    assert len(runs) == 1, runs
    return runs[0]
