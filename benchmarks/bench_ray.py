"""Evaluation on Ray: 1 worker against 2, and Ray's cost per job against one process.

    .venv/bin/python benchmarks/bench_ray.py             # trains a tiny 10-checkpoint run first (once)
    .venv/bin/python benchmarks/bench_ray.py --run logs/rsl_rl/g1_flat/<run> --workers 1 2 4 8

The same evaluation (10 checkpoints x 2 scenarios, checkpoints_per_job of them per job) is
run through ``postconv.stage.run.evaluate`` on a fresh copy of the run each time: on a local
Ray cluster with each worker count, then, as the baseline, in this process without Ray
(after the Ray runs: this process then builds the one simulation it may hold). Every
run's wall time includes building the env(s) and loading the checkpoints, as a user
sees it. Ray's cost per job = (1 worker - in process) / jobs: the actor start, shipping
jobs and results, and progress reports. On a multi-GPU node pass ``--device cuda:0`` (one
worker per GPU); on a cluster, ``--address auto`` from a node of it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench_stage import train_bench_run
from rich.console import Console
from rich.table import Table


def _timed_evaluation(run: Path, scratch: Path, config) -> tuple[float, object]:
    from postconv.stage.run import evaluate

    copy = scratch / f"run-{time.monotonic_ns()}"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("postconv"))
    start = time.perf_counter()
    report = evaluate(copy, config, Console(quiet=True))
    return time.perf_counter() - start, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run with >= 10 checkpoints (default: train a tiny one)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--address", default="local", help="Ray cluster: local (started here), auto, HOST:PORT"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num_envs", type=int, default=16)
    parser.add_argument("--envs-per-checkpoint", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from postconv.evaluation.ray_eval import connected
    from postconv.stage.config import StageConfig

    console = Console()
    if args.run is None:
        with console.status("training a 10-checkpoint run (once; kept in outputs/bench_stage)"):
            args.run = train_bench_run(Path("outputs/bench_stage").resolve())
    config = StageConfig(
        scenarios=("none", "0.5@1-3"),
        num_envs=args.num_envs,
        envs_per_checkpoint=args.envs_per_checkpoint,
        steps=args.steps,
        burn_in_steps=0,
        from_iter=1,  # the last 10 checkpoints of the bench run (model_1 .. model_10)
        device=args.device,
        report=False,
    )
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        with connected(args.address):  # one cluster for all worker counts: its start is not timed
            for n in args.workers:
                with console.status(f"Ray, {n} worker(s)"):
                    on_ray = replace(config, ray=args.address, ray_workers=n)
                    seconds, report = _timed_evaluation(args.run, Path(scratch), on_ray)
                rows.append((f"Ray, {n} worker(s)", n, seconds, report))
        with console.status("in this process, no Ray (baseline)"):
            seconds, report = _timed_evaluation(args.run, Path(scratch), config)
        baseline = ("in this process, no Ray", 1, seconds, report)

    jobs = len(baseline[3].candidates) * len(baseline[3].scenarios) * config.num_seeds // config.groups
    table = Table(
        title=f"{len(baseline[3].candidates)} checkpoints x 2 scenarios, {jobs} jobs of {config.num_envs} envs "
        f"x {config.steps} steps ({args.device})"
    )
    for col in ("run", "wall s", "env-steps/s", "vs in process", "vs 1 worker"):
        table.add_column(col, justify="right")
    one = next((r for r in rows if r[1] == 1), None)
    for name, _, seconds, report in [baseline, *rows]:
        table.add_row(
            name,
            f"{seconds:.1f}",
            f"{report.env_steps / seconds:.0f}",
            f"{baseline[2] / seconds:.2f}x",
            f"{one[2] / seconds:.2f}x" if one else "-",
        )
    console.print(table)
    if one:
        console.print(
            f"Ray's cost per job (1 worker - in process) / jobs: {(one[2] - baseline[2]) / jobs:.2f} s"
        )


if __name__ == "__main__":
    main()
