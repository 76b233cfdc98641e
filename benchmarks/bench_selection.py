"""Speed of the selection solvers: ours against cvxpy (the paper's route), and at scale.

    .venv/bin/python benchmarks/bench_selection.py            # full run (a few minutes)
    .venv/bin/python benchmarks/bench_selection.py --quick    # smaller sizes
    .venv/bin/python benchmarks/bench_selection.py --scale    # the stage's selection at GPU scale (~20 min, ~4 GB of disk)

Prints three tables: (1) one checkpoint, n samples, ours vs cvxpy/Clarabel with the time
ratio and the relative difference of the values; (2) ours alone up to 10^7 samples;
(3) a batch of 100 checkpoints x 10^6 samples x 5 radii in float32, the size of a real
evaluation. Times are the best of several runs in this process.

``--scale`` prints (4): the stage's selection (point estimates at 4 radii, then intervals
and P(best) from 200 group-bootstrap replicates) on synthetic per-step samples written to
disk in the sample store's layout, up to 30 checkpoints x 3 scenarios x 4096 envs x 1000
steps; streamed from disk (:class:`postconv.storage.store_source.StoreSource`; the same samples in
one ``.npz``, :class:`postconv.storage.file_source.NpzSource`, as ``postconv select FILE`` reads
them) against the samples stacked in memory with the per-sample bootstrap where that fits. Each cell runs in a
process of its own, so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from postconv.selection import worst_case
from postconv.selection.reference import ReferenceSolverError

console = Console() if sys.stdout.isatty() else Console(width=200)


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


SCALE_K = (1.0, 2.0, 4.0, 6.0)


def write_store(root: Path, checkpoints: int, scenarios: int, envs: int, steps: int, seed: int = 0) -> None:
    """Per-step samples in the store's layout (psi, episode, terminated per folder): rewards
    0.02 +- 0.005, a fall at -4 on 0.2% of steps (then a new episode), a per-checkpoint offset."""
    rng = np.random.default_rng(seed)
    for c in range(checkpoints):
        for s in range(scenarios):
            folder = root / f"scenario_{s}" / f"model_{c}" / "seed_0"
            folder.mkdir(parents=True)
            psi = rng.standard_normal((steps, envs), dtype=np.float32)
            psi *= 0.005
            psi += 0.02 + 0.001 * c / checkpoints
            fall = rng.random((steps, envs), dtype=np.float32) < 0.002
            psi[fall] = -4.0
            np.save(folder / "psi.npy", psi)
            np.save(folder / "terminated.npy", fall)
            np.save(folder / "episode.npy", np.cumsum(fall, axis=0, dtype=np.int32) - fall)
            (folder / "meta.json").write_text(json.dumps({"spec": {"burn_in_steps": 0}, "age_at_start": 0}))


def write_npz(root: Path, checkpoints: int, scenarios: int, envs: int, steps: int) -> Path:
    """The store's samples as one uncompressed samples file, as a user's own would be: psi
    (B, n) float32 in the order :class:`~postconv.storage.store_source.StoreSource` reads them,
    groups the env slot. Written a folder at a time, never held whole."""
    path = root / "samples.npz"
    n = scenarios * envs * steps
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
              "shape": (checkpoints, n)}  # fmt: skip
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open("psi.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_2_0(f, header)
            for c in range(checkpoints):
                for s in range(scenarios):
                    f.write(np.load(root / f"scenario_{s}" / f"model_{c}" / "seed_0" / "psi.npy").tobytes())
        with archive.open("groups.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.tile(np.arange(envs), scenarios * steps))
    return path


def _store_index(root: Path, checkpoints: int, scenarios: int, envs: int, steps: int):
    from postconv.storage.sample_store import SampleIndex

    units = [(f"scenario_{s}", f"model_{c}", 0) for c in range(checkpoints) for s in range(scenarios)]
    return SampleIndex(
        folders={u: root / u[0] / u[1] / "seed_0" for u in units},
        iterations={f"model_{c}": c for c in range(checkpoints)},
        term_names=("reward",),
        feature_names=(),
        steps={u: (steps, envs) for u in units},
    )


def scale_cell(root: Path, size: tuple[int, int, int, int], mode: str, n_boot: int) -> dict:
    """One selection in this process: ``stream`` (the run's sample folders, grouped bootstrap),
    ``file`` (the same samples in one ``.npz``, as ``postconv select FILE`` streams it) or
    ``stacked`` (stacked in memory as the stage does below its streaming size, per-sample
    bootstrap of ``n_boot`` replicates). Reading the samples counts with the estimates."""
    from postconv.selection import bootstrap, worst_case
    from postconv.storage.file_source import NpzSource
    from postconv.storage.sample_store import complete_checkpoints, to_sample_set
    from postconv.storage.store_source import StoreSource

    index = _store_index(root, *size)
    kept, _, units = complete_checkpoints(index)
    ks = list(SCALE_K)
    start = time.perf_counter()
    estimate_passes = None
    if mode in ("stream", "file"):
        opened = (
            StoreSource(index, kept, units)
            if mode == "stream"
            else nullcontext(NpzSource(root / "samples.npz"))
        )
        with opened as source:
            passes = _count_passes(source)
            estimate = worst_case(source, k=ks)
            middle = time.perf_counter()
            estimate_passes = len(passes)
            boot = bootstrap(source, k=ks, n_boot=n_boot, paired=None, estimate=estimate)
    else:
        samples, _ = to_sample_set(index, unit="step")
        estimate = worst_case(torch.from_numpy(samples.psi), samples.weights, k=ks)
        middle = time.perf_counter()
        boot = bootstrap(samples.psi, samples.groups, k=ks, weights=samples.weights, n_boot=n_boot,
                         method="exact", estimate=estimate)  # fmt: skip
    end = time.perf_counter()
    return {
        "estimate_s": middle - start,
        "bootstrap_s": end - middle,
        "estimate_passes": estimate_passes,
        "passes": None if boot.grouped is None else boot.grouped.passes,
        "solved_exactly": None if boot.grouped is None else boot.grouped.solved_exactly,
        "max_gap": None if boot.grouped is None else boot.grouped.max_gap,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _count_passes(source) -> list[str]:
    """The purposes of the passes over ``source`` from now on (it is wrapped in place)."""
    passes, chunks = [], source.chunks

    def counted(purpose: str):
        passes.append(purpose)
        return chunks(purpose)

    source.chunks = counted
    return passes


def _run_cell(root: Path, size, mode: str, n_boot: int) -> dict:
    cmd = [sys.executable, __file__, "--cell", str(root), *map(str, size), mode, str(n_boot)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def scale(sizes: list[tuple[int, int, int, int]], stacked_up_to: int, data: Path | None) -> None:
    table = Table(
        title="the stage's selection at scale: 4 radii, then 200 bootstrap replicates (float32 per-step samples on disk)"
    )
    for col in ("checkpoints", "samples / ckpt", "psi on disk", "path", "estimates s", "bootstrap s",
                "passes (estimates + bootstrap)", "peak MB", "ns / sample", "bootstrap vs per-sample"):  # fmt: skip
        table.add_column(col, justify="right")
    for size in sizes:
        b, scen, envs, steps = size
        n = scen * envs * steps
        root = Path(tempfile.mkdtemp(prefix="postconv-bench-", dir=data))
        try:
            write_store(root, *size)
            stream = _run_cell(root, size, "stream", 200)
            row = [f"{b}", f"{n:,}", f"{b * n * 4 / 2**20:,.0f} MiB"]
            total = stream["estimate_s"] + stream["bootstrap_s"]
            ratio = ""
            if b * n <= stacked_up_to:
                reps = 10 if b * n > 1 << 22 else 200
                stacked = _run_cell(root, size, "stacked", reps)
                per_sample = stacked["bootstrap_s"] / reps * 200
                ratio = f"{per_sample / stream['bootstrap_s']:.0f}x faster"
                note = "" if reps == 200 else f" ({200 // reps} x {reps} replicates)"
                table.add_row(*row, "stacked, per-sample", f"{stacked['estimate_s']:.1f}", f"{per_sample:.1f}{note}",
                              "", f"{stacked['peak_mb']:,.0f}", "", "")  # fmt: skip
            table.add_row(*row, "streamed, grouped", f"{stream['estimate_s']:.1f}", f"{stream['bootstrap_s']:.1f}",
                          f"{stream['estimate_passes']} + {stream['passes']}", f"{stream['peak_mb']:,.0f}", f"{total / (b * n) * 1e9:.1f}", ratio)  # fmt: skip
            console.print(f"{size}: streamed {stream}")
            write_npz(root, *size)
            file = _run_cell(root, size, "file", 200)
            total = file["estimate_s"] + file["bootstrap_s"]
            table.add_row(*row, ".npz file, grouped", f"{file['estimate_s']:.1f}", f"{file['bootstrap_s']:.1f}",
                          f"{file['estimate_passes']} + {file['passes']}", f"{file['peak_mb']:,.0f}", f"{total / (b * n) * 1e9:.1f}", "")  # fmt: skip
            console.print(f"{size}: .npz file {file}")
        finally:
            shutil.rmtree(root, ignore_errors=True)
    console.print(table)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--cell":
        root, *size, mode, n_boot = sys.argv[2:]
        torch.set_num_threads(1)
        print(json.dumps(scale_cell(Path(root), tuple(int(v) for v in size), mode, int(n_boot))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--scale", action="store_true", help="the stage's selection at GPU scale, from disk")
    parser.add_argument(
        "--data", type=Path, default=None, help="where --scale writes its samples (default: /tmp)"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Solution may be inaccurate")  # cvxpy; we check its answers
    console.print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    torch.set_num_threads(1)
    if args.scale:
        sizes = [(10, 1, 1024, 100), (20, 1, 4096, 250), (30, 3, 4096, 100), (30, 3, 4096, 1000)]
        scale(sizes[:2] if args.quick else sizes, stacked_up_to=30 * 1024 * 1000, data=args.data)
        return
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
