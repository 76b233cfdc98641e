"""Run probe_env.py in a process of its own (Isaac Lab keeps one simulation per process)."""

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
    return json.loads(proc.stdout.strip().splitlines()[-1])
