"""Simulator work in processes of their own (Isaac Lab keeps one simulation per process)."""

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).with_name("probe_env.py")


def run_probe(kind: str, num_envs: int, steps: int) -> dict:
    """Run probe_env.py in its own process (one simulation per process) and parse its JSON."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(PROBE), kind, str(num_envs), str(steps)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    if proc.returncode != 0:
        raise AssertionError(f"probe {kind} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # MuJoCo-Warp and Newton print buffer overflows (contacts, constraints) from their kernels
    result["overflow_lines"] = [
        line for line in (proc.stdout + proc.stderr).splitlines() if "overflow" in line.lower()
    ]
    return result


def train(task: str, cwd: Path, iterations: int = 2) -> Path:
    """Run `isaaclab train` on ``task`` (4 envs, 8 steps an iteration) and return its run folder."""
    cmd = [
        str(Path(sys.executable).with_name("isaaclab")), "train", "--task", task,
        "--num_envs", "4", "--max_iterations", str(iterations), "--device", "cpu",
        "agent.device=cpu", "agent.num_steps_per_env=8", "agent.save_interval=1",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = [run for experiment in (cwd / "logs" / "rsl_rl").iterdir() for run in experiment.iterdir()]
    assert len(runs) == 1, runs
    return runs[0]
