"""The ranking in the console: the table (whose cells the HTML report shares), the few-samples
note, the summary lines, and the progress of a streamed selection."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from postconv.console import wide_console
from postconv.ranking.baselines import RulePick
from postconv.ranking.result import SelectionResult
from postconv.selection import divergences


def ranking_table(result: SelectionResult) -> Table:
    """The ranking as a rich table, checkpoints ordered by the primary k."""
    ks = result.config.k
    primary = result.config.primary_index
    better = "higher" if result.sense == "reward" else "lower"
    table = Table(
        title=f"Checkpoints ranked by worst-case {result.config.divergence.upper()} value at k = {ks[primary]:g} "
        f"({better} is better; rank in brackets)",
        caption=f"{result.samples_per_checkpoint:,} samples per checkpoint"
        + (f" over push scenarios {', '.join(result.scenarios)}" if result.scenarios else "")
        + (
            f"; interval, P(best) and P(> last) (beats the last checkpoint) at k = {ks[primary]:g} from "
            f"{result.config.n_boot} group-bootstrap replicates"
            if result.config.n_boot
            else "; no bootstrap (--n-boot 0)"
        )
        + (f"\nA sample: {result.sample['description']}" if result.sample else "")
        + (f"\n[yellow]{note}[/]" if (note := few_samples_note(result)) else ""),
    )
    header, rows = ranking_rows(result)
    for i, name in enumerate(header):
        bold = name == f"k={ks[primary]:g}"
        table.add_column(
            name, justify="left" if i == 0 else "right", no_wrap=True, style="bold" if bold else None
        )
    for name, cells in rows:
        table.add_row(*cells, style="green" if name == result.chosen else None)
    return table


def ranking_rows(result: SelectionResult) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Header and (checkpoint, cells) rows of the ranking, ordered by the primary k: the
    printed table and the HTML report show the same cells."""
    ks = result.config.k
    primary = result.config.primary_index
    header = ["checkpoint", "mean", *(f"k={k:g}" for k in ks)]
    beats = any(c.p_beats_last is not None for c in result.checkpoints)
    if result.checkpoints[0].interval is not None:
        header += [f"{result.config.level:.0%} CI", "P(best)"] + (["P(> last)"] if beats else [])
    rows = []
    for c in sorted(result.checkpoints, key=lambda c: c.rank[primary]):
        cells = [c.name, f"{c.mean:.3g} [{c.mean_rank}]"]
        cells += [f"{v:.3g} [{r}]" for v, r in zip(c.worst_case, c.rank, strict=True)]
        if c.interval is not None:
            lo, hi = c.interval[primary]
            cells += [f"{lo:.3g}..{hi:.3g}", f"{c.p_best[primary]:.2f}"]
            if beats:
                cells.append("last" if c.p_beats_last is None else f"{c.p_beats_last[primary]:.2f}")
        rows.append((c.name, cells))
    return header, rows


FEW_SAMPLES = 10
"""Below this many samples carrying the worst case, its value and interval say little."""


def few_samples_note(result: SelectionResult) -> str | None:
    """A warning where the primary k leaves the worst case to a handful of samples, else None.

    The ball of radius k around n equally weighted samples holds the uniform distribution on
    any m >= n s of them, s the divergence's :meth:`~postconv.selection.divergences.base.Divergence.edge_share`
    (KL: the uniform law on m has divergence log(n / m), so s = e^-k), so the worst case may
    rest on the worst n s samples alone."""
    n, k = result.samples_per_checkpoint, result.config.primary_k
    share = divergences.get(result.config.divergence).edge_share(k)
    if n <= 0 or n * share >= FEW_SAMPLES:
        return None
    worst = max(1, math.ceil(n * share - 1e-9))  # the fewest samples whose uniform law is in the ball
    on = "the single worst" if worst == 1 else f"the worst {worst}"
    return (
        f"Few samples: at k = {k:g} the worst case may rest on {on} of {n} samples per checkpoint "
        f"(the fewest whose equal weights fit in the {result.config.divergence.upper()} ball), so its value "
        f"and interval say little; about {math.ceil(FEW_SAMPLES / share - 1e-9)} samples per checkpoint "
        f"(more envs per checkpoint or scenarios) make k = {k:g} mean what it says."
    )


def against_last(result: SelectionResult) -> str | None:
    """How sure the bootstrap is that the worst case's pick beats the last checkpoint, in words
    (None when that pick is the last or there is no bootstrap)."""
    p = result.config.primary_index
    pick = next(c for c in result.checkpoints if c.name == result.chosen_by_worst_case)
    if pick.p_beats_last is None:
        return None
    last = result.checkpoints[-1].name
    return (
        f"{pick.name} beats the last checkpoint {last} in a share {pick.p_beats_last[p]:.2f} of the "
        f"bootstrap replicates at k = {result.config.primary_k:g} (P(> last) in the table)"
    )


def print_summary(result: SelectionResult, paths: tuple[Path, ...], console: Console | None = None) -> None:
    """The ranking table, the chosen checkpoint and why, what the mean would choose, the
    checkpoints not ranked, and the files written."""
    console = console or wide_console()
    console.print(ranking_table(result))
    console.print(f"chosen checkpoint: [bold green]{result.chosen}[/] ({result.chosen_because})")
    if result.chosen_by_mean != result.chosen:
        console.print(f"the plain simulation mean would have chosen {result.chosen_by_mean}")
    # --pick evidence gives P(> last) in its reason already
    if result.config.pick != "evidence" and (line := against_last(result)) is not None:
        console.print(line)
    for name, why in result.skipped.items():
        console.print(f"[yellow]not ranked: {name}[/] ({why})")
    for p in paths:
        console.print(f"wrote {p}")


def rules_line(picks: list[RulePick]) -> str:
    """The other rules' picks (:mod:`postconv.ranking.baselines`) in one console line."""
    said = []
    for pick in (p for p in picks if p.key != "worst_case"):  # that one has its own line
        if pick.checkpoint is None:
            said.append(f"{pick.rule}: none (no training curve)")
            continue
        tie = f" ({pick.tied} tied, the latest)" if pick.tied > 1 else ""
        said.append(f"{pick.rule} {pick.checkpoint}{tie}")
    return "other rules pick: " + "; ".join(said)


@contextmanager
def pass_progress(console: Console, label: str) -> Iterator[Progress]:
    """A progress bar for a streamed selection: the source adds a task per pass over the
    samples, its description saying what the pass is for (reading, solving, resampling)."""
    columns = (
        TextColumn(f"{label}: {{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        yield progress


def streamed_summary(result: SelectionResult, where: str) -> str:
    """One line on how a streamed selection ran, for the console."""
    line = f"{result.samples_per_checkpoint:,} samples per checkpoint streamed from {where}"
    if result.bootstrap and result.bootstrap["method"] == "grouped":
        line += f"; bootstrap from group sums in {result.bootstrap['passes']} passes"
    return line
