"""Evaluation throughput of the post-convergence stage, as ratios.

    .venv/bin/python benchmarks/bench_stage.py                    # trains a tiny 10-checkpoint run first
    .venv/bin/python benchmarks/bench_stage.py --run logs/rsl_rl/g1_flat/<run> --envs-per-checkpoint 4

1. Overhead: in one process and one env (10 groups of m envs), raw stepping with a
   zero-cost policy (zero actions, nothing recorded) against the evaluation of 10
   checkpoints (policy forward passes, common random numbers, samples recorded and
   written). Also the share of the evaluation's time spent outside ``env.step``.
2. Grouped against one by one: 10 checkpoints in one env of 10 x m envs, against the same
   10 checkpoints one after another in an env of m envs (one env build reused, as a user
   would script it). Isaac Lab keeps one simulation per process, so these two run in two
   processes, each timed after its env is built.

Peak resident memory of each process is reported as well.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

CHECKPOINTS = 10
TASK = "PostConv-Velocity-Flat-G1"


def _refs(run_dir: Path):
    from postconv.evaluation.rollout import checkpoint_ref
    from postconv.storage.checkpoints import open_run

    run = open_run(run_dir)
    chosen = run.checkpoints[-CHECKPOINTS:]
    if len(chosen) < CHECKPOINTS:
        raise SystemExit(f"{run_dir} has {len(chosen)} checkpoints; the benchmark needs {CHECKPOINTS}")
    return run, [checkpoint_ref(c.path, c.iteration) for c in chosen]


def worker(mode: str, run_dir: Path, m: int, steps: int, out: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    from postconv.evaluation.rollout import Evaluator, RolloutSpec, plan_jobs
    from postconv.tasks.scenarios import parse_scenario

    run, refs = _refs(run_dir)
    per_job = CHECKPOINTS if mode in ("overhead", "grouped") else 1
    spec = RolloutSpec(task=TASK, envs_per_checkpoint=m, num_envs=per_job * m, burn_in_steps=0, steps=steps)
    jobs = plan_jobs(spec, refs, [parse_scenario("0.5@1-3")], [0], out, run.agent_cfg, per_job, env_config={})
    result: dict = {"mode": mode, "envs": per_job * m}
    with Evaluator() as evaluator:
        evaluator._ensure_env(spec)
        env = evaluator.env
        if mode == "overhead":
            zero = torch.zeros(env.num_envs, env.action_manager.total_action_dim)
            evaluator.crn.restart(0)
            env.reset()
            start = time.perf_counter()
            for _ in range(steps):
                env.step(zero)
            result["raw_env_steps_per_s"] = steps * env.num_envs / (time.perf_counter() - start)
        start = time.perf_counter()
        step_seconds = 0.0
        for job in jobs:
            evaluator.run(job)
            step_seconds += evaluator.step_seconds
        seconds = time.perf_counter() - start
    result.update(
        seconds=seconds,
        env_steps_per_s=CHECKPOINTS * m * steps / seconds,
        outside_step_share=1 - step_seconds / seconds,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    return result


def _spawn(mode: str, args) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, __file__, "--worker", mode, "--run", str(args.run),
               "--envs-per-checkpoint", str(args.envs_per_checkpoint), "--steps", str(args.steps), "--out", out]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def train_bench_run(root: Path) -> Path:
    runs = sorted(root.glob("logs/rsl_rl/g1_flat/*/model_10.pt"))
    if runs:
        return runs[-1].parent
    root.mkdir(parents=True, exist_ok=True)
    isaaclab = Path(sys.executable).with_name("isaaclab")
    cmd = [str(isaaclab), "train", "--task", TASK, "--num_envs", "4", "--max_iterations", "11", "--device", "cpu",
           "agent.device=cpu", "agent.num_steps_per_env=8", "agent.save_interval=1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "POSTCONV_STAGE": "0"}
    subprocess.run(cmd, cwd=root, check=True, capture_output=True, env=env)
    return train_bench_run(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run with >= 10 checkpoints (default: train a tiny one)")
    parser.add_argument("--envs-per-checkpoint", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.run, args.envs_per_checkpoint, args.steps, args.out)))
        return
    console = Console()
    if args.run is None:
        with console.status("training a 10-checkpoint run (once; kept in outputs/bench_stage)"):
            args.run = train_bench_run(Path("outputs/bench_stage").resolve())
    results = {}
    for mode in ("overhead", "grouped", "one_by_one"):
        with console.status(f"{mode}"):
            results[mode] = _spawn(mode, args)
    table = Table(
        title=f"Evaluation of {CHECKPOINTS} checkpoints, {args.envs_per_checkpoint} envs each, {args.steps} steps"
    )
    for col in ("run", "envs", "env-steps/s", "outside env.step", "peak RSS"):
        table.add_column(col, justify="right")
    o, g, s = results["overhead"], results["grouped"], results["one_by_one"]
    table.add_row("raw stepping, zero actions", str(o["envs"]), f"{o['raw_env_steps_per_s']:.0f}", "-", "-")
    for name, r in (
        ("evaluation, grouped", g),
        ("evaluation, one by one", s),
        ("evaluation (overhead run)", o),
    ):
        table.add_row(name, str(r["envs"]), f"{r['env_steps_per_s']:.0f}", f"{r['outside_step_share']:.1%}",
                      f"{r['peak_rss_mb']:.0f} MB")  # fmt: skip
    console.print(table)
    console.print(
        f"evaluation / raw stepping: {o['env_steps_per_s'] / o['raw_env_steps_per_s']:.2f} "
        f"(time outside env.step: {o['outside_step_share']:.1%}; goal: overhead < 10%)"
    )
    console.print(f"grouped / one by one: {s['seconds'] / g['seconds']:.2f}x faster (goal: >= 3x)")


if __name__ == "__main__":
    main()
