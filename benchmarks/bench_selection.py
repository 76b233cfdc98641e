"""Speed of the selection solvers: ours against cvxpy (the paper's route), and at scale.

    .venv/bin/python benchmarks/bench_selection.py            # full run (a few minutes)
    .venv/bin/python benchmarks/bench_selection.py --quick    # smaller sizes

Prints three tables: (1) one checkpoint, n samples, ours vs cvxpy/Clarabel with the time
ratio and the relative difference of the values; (2) ours alone up to 10^7 samples;
(3) a batch of 100 checkpoints x 10^6 samples x 5 radii in float32, the size of a real
evaluation. Times are the best of several runs in this process.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from postconv.selection import worst_case
from postconv.selection.reference import ReferenceSolverError

console = Console()


def best_time(repeat: int, *args, **kwargs) -> tuple[float, object]:
    """Best wall time of ``worst_case(*args, **kwargs)`` over ``repeat`` runs, and its result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = worst_case(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, out


def samples(n: int, batch: int = 1, seed: int = 0, dtype=np.float64) -> np.ndarray:
    """Skewed per-step rewards: mostly good steps, a lower tail of bad ones."""
    rng = np.random.default_rng(seed)
    out = rng.standard_normal((batch, n), dtype=np.float32 if dtype == np.float32 else np.float64)
    out -= rng.exponential(1.0, (batch, n)).astype(out.dtype)
    return out if batch > 1 else out[0]


def against_cvxpy(sizes: list[int], k) -> None:
    table = Table(title=f"one checkpoint, k = {k}: ours vs cvxpy (Clarabel), float64")
    for col in ("divergence", "n", "cvxpy s", "ours s", "speed-up", "max rel. diff"):
        table.add_column(col, justify="right")
    for divergence in ("kl", "chi2"):
        for n in sizes:
            psi = samples(n, seed=n)
            t_fast, fast = best_time(20, psi, k=k, divergence=divergence)
            try:
                t_ref, ref = best_time(2, psi, k=k, divergence=divergence, solver="cvxpy")
            except ReferenceSolverError as err:
                console.print(f"[yellow]cvxpy failed ({divergence}, n = {n:,}): {err}[/]")
                table.add_row(divergence, f"{n:,}", "failed", f"{t_fast:.5f}", "", "")
                continue
            rel = np.max(np.abs(fast.value - ref.value) / np.abs(ref.value))
            table.add_row(
                divergence, f"{n:,}", f"{t_ref:.3f}", f"{t_fast:.5f}", f"{t_ref / t_fast:,.0f}x", f"{rel:.1e}"
            )
    console.print(table)


def ours_alone(sizes: list[int], ks: list[float]) -> None:
    table = Table(title=f"one checkpoint, k sweep {ks}: ours alone, float64")
    for col in ("divergence", "n", "seconds", "ns per sample per k"):
        table.add_column(col, justify="right")
    for divergence in ("kl", "chi2"):
        for n in sizes:
            psi = samples(n, seed=n)
            t, _ = best_time(3 if n <= 10**6 else 1, psi, k=ks, divergence=divergence)
            table.add_row(divergence, f"{n:,}", f"{t:.3f}", f"{t / n / len(ks) * 1e9:.1f}")
    console.print(table)


def batch(checkpoints: int, n: int, ks: list[float]) -> None:
    psi = torch.from_numpy(samples(n, batch=checkpoints, seed=1, dtype=np.float32))
    table = Table(title=f"batch: {checkpoints} checkpoints x {n:,} samples x {len(ks)} radii, float32")
    for col in ("divergence", "threads", "seconds", "ns per sample per k"):
        table.add_column(col, justify="right")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for divergence in ("kl", "chi2"):
            t, _ = best_time(2, psi, k=ks, divergence=divergence)
            table.add_row(divergence, str(threads), f"{t:.2f}", f"{t / psi.numel() / len(ks) * 1e9:.2f}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Solution may be inaccurate")  # cvxpy; we check its answers
    console.print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    torch.set_num_threads(1)
    if args.quick:
        against_cvxpy([100, 1000], k=2.0)
        ours_alone([10**5], ks=[0.5, 1, 2, 4, 6])
        batch(10, 10**5, ks=[0.5, 1, 2, 4, 6])
    else:
        against_cvxpy([100, 1000, 10_000], k=2.0)
        against_cvxpy([10_000], k=[0.5, 1, 2, 4, 6])
        ours_alone([10**5, 10**6, 10**7], ks=[0.5, 1, 2, 4, 6])
        batch(100, 10**6, ks=[0.5, 1, 2, 4, 6])


if __name__ == "__main__":
    main()
