"""The ``postconv`` command.

postconv select SAMPLES.npz [--k 1 2 4 6] [--primary-k 4] [--divergence kl] [--out DIR]
postconv select --demo      # writes a synthetic samples file and ranks it
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console

from postconv import __version__

DEMO_DIR = Path("outputs/demo")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="postconv", description="Post-convergence policy selection for Isaac Lab."
    )
    parser.add_argument("--version", action="version", version=f"postconv {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sel = sub.add_parser(
        "select",
        help="rank checkpoints by worst-case performance from a samples file",
        description="Rank checkpoints by their worst-case performance within a divergence ball of radius k "
        "around the simulation distribution, next to the plain mean.",
    )
    sel.add_argument(
        "samples", nargs="?", type=Path, help="npz file with psi (checkpoints, samples); see README"
    )
    sel.add_argument(
        "--demo", action="store_true", help=f"write a synthetic samples file to {DEMO_DIR} and rank it"
    )
    sel.add_argument("--k", type=float, nargs="+", default=[1.0, 2.0, 4.0, 6.0], help="radii to report")
    sel.add_argument("--primary-k", type=float, default=4.0, help="the radius that picks the checkpoint")
    sel.add_argument("--divergence", choices=["kl", "chi2"], default="kl")
    sel.add_argument("--n-boot", type=int, default=200, help="bootstrap replicates (0: no intervals)")
    sel.add_argument("--level", type=float, default=0.9, help="interval coverage")
    sel.add_argument("--seed", type=int, default=0)
    sel.add_argument("--out", type=Path, help="results folder (default: beside the samples file)")
    return parser


def _select(args: argparse.Namespace, console: Console) -> int:
    from postconv.demo import demo_samples
    from postconv.report import SelectionConfig, print_summary, select, write_results
    from postconv.samples_file import load_samples, save_samples

    if args.demo == (args.samples is not None):
        console.print("[red]give either a samples file or --demo[/]")
        return 2
    if args.demo:
        path = save_samples(DEMO_DIR / "samples.npz", demo_samples(args.seed))
        console.print(f"wrote synthetic demo samples to {path}")
    else:
        path = args.samples
    samples = load_samples(path)
    config = SelectionConfig(
        k=tuple(args.k),
        primary_k=args.primary_k,
        divergence=args.divergence,
        n_boot=args.n_boot,
        level=args.level,
        seed=args.seed,
    )
    with console.status(f"selecting among {len(samples.names)} checkpoints"):
        result = select(samples, config)
    paths = write_results(result, args.out or path.parent)
    print_summary(result, paths, console)
    return 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    args = _parser().parse_args(argv)
    from postconv.report import wide_console

    console = wide_console()
    try:
        if args.command == "select":
            return _select(args, console)
    except (ValueError, FileNotFoundError) as err:
        console.print(f"[red]error:[/] {err}")
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
