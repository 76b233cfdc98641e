"""How fast the ``postconv`` command answers before any work: ``--help`` and a bad option.

    .venv/bin/python benchmarks/bench_cli.py [--repeats 5]

Each is run as a fresh process (what a user's typo costs), best of ``--repeats``, beside the
baseline of a bare ``python -c pass`` measured in the same run; the ratio says what postconv
adds to Python's own start.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from rich.console import Console
from rich.table import Table

CASES = {
    "python -c pass (baseline)": ["-c", "pass"],
    "postconv --help": ["-m", "postconv.cli", "--help"],
    "postconv run RUN --k -1 (bad option)": ["-m", "postconv.cli", "run", "RUN", "--k", "-1"],
    "postconv sim2sim --help": ["-m", "postconv.cli", "sim2sim", "--help"],
}


def best_of(args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    best_of(CASES["postconv --help"], 1)  # warm the file cache
    seconds = {name: best_of(args, repeats) for name, args in CASES.items()}
    base = seconds["python -c pass (baseline)"]
    table = Table(title=f"postconv's start (best of {repeats} fresh processes)")
    for col in ("case", "seconds", "x baseline"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for name, s in seconds.items():
        table.add_row(name, f"{s:.3f}", f"{s / base:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
