"""Selection on a sample set, and its results as files and as a table.

Data flows one way: samples -> worst-case estimates -> ranking and bootstrap -> a
:class:`SelectionResult` -> JSON and CSV on disk -> a printed table.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from postconv import __version__
from postconv.console import wide_console
from postconv.review.config import SelectionConfig
from postconv.selection import bootstrap, divergences, rank, share_beating, worst_case
from postconv.selection.source import SampleSource
from postconv.storage.samples_file import SampleSet, atomic_write


@dataclass(frozen=True)
class CheckpointResult:
    """One checkpoint's numbers. Lists run over the k sweep."""

    name: str
    mean: float
    mean_rank: int
    worst_case: list[float]
    rank: list[int]
    interval: list[list[float]] | None = None
    p_best: list[float] | None = None
    p_best_mean: float | None = None
    p_beats_last: list[float] | None = None
    """Per k: the share of paired replicates in which this checkpoint's worst case beats the
    last checkpoint's (None for the last itself and without a bootstrap)."""
    p_beats_last_mean: float | None = None
    """The same for the plain mean."""


@dataclass(frozen=True)
class Pick:
    """A checkpoint a user would look at first, and why."""

    name: str
    roles: tuple[str, ...]
    """``chosen``, ``worst case's pick``, ``mean's pick``, ``last``: one checkpoint may be several."""


def picks_of(chosen: str, by_worst_case: str, by_mean: str, checkpoints: list[str]) -> list[Pick]:
    """The chosen checkpoint, the worst case's pick (where a pick rule chose another one), the
    plain mean's pick and the last of ``checkpoints`` (training order), each once."""
    roles: dict[str, list[str]] = {chosen: ["chosen"]}
    named = [(by_mean, "mean's pick"), (checkpoints[-1], "last")]
    if by_worst_case and by_worst_case != chosen:
        named.insert(0, (by_worst_case, "worst case's pick"))
    for name, role in named:
        roles.setdefault(name, []).append(role)
    return [Pick(name, tuple(r)) for name, r in roles.items()]


@dataclass(frozen=True)
class Recommendation:
    """The checkpoint a pick rule recommends, and why in words."""

    name: str
    because: str


def recommend(
    config: SelectionConfig, names: list[str], by_worst_case: str, p_beats_last: float | None
) -> Recommendation:
    """Apply ``config.pick`` to a ranking of ``names`` (training order, so the last one is the
    run's end). ``p_beats_last``: the share of bootstrap replicates in which ``by_worst_case``'s
    worst case at the primary k beats the last checkpoint's (None without a bootstrap or when
    ``by_worst_case`` is the last)."""
    last, k = names[-1], config.primary_k
    if by_worst_case == last:
        return Recommendation(last, f"best worst case at k = {k:g}, and the last checkpoint")
    if config.pick == "worst-case":
        return Recommendation(by_worst_case, f"best worst case at k = {k:g}")
    if config.pick == "last":
        return Recommendation(
            last, f"the last checkpoint (--pick last); the worst case at k = {k:g} picks {by_worst_case}"
        )
    if p_beats_last is None:
        raise ValueError("--pick evidence needs the bootstrap's P(> last); give --n-boot >= 2")
    if p_beats_last >= config.pick_p:
        return Recommendation(
            by_worst_case,
            f"best worst case at k = {k:g}, beating the last checkpoint in {p_beats_last:.3f} >= "
            f"{config.pick_p:g} of the replicates (--pick evidence)",
        )
    return Recommendation(
        last,
        f"the last checkpoint: the worst case's pick {by_worst_case} beats it in only {p_beats_last:.3f} < "
        f"{config.pick_p:g} of the replicates (--pick evidence)",
    )


@dataclass(frozen=True)
class SelectionResult:
    """Everything the selection decided, in a form that serializes to JSON."""

    config: SelectionConfig
    sense: str
    samples_per_checkpoint: int
    checkpoints: list[CheckpointResult]
    chosen: str
    """The recommended checkpoint: ``config.pick`` applied to the ranking."""
    chosen_by_mean: str
    chosen_by_worst_case: str = ""
    """The best worst case at the primary k (the chosen one under ``--pick worst-case``)."""
    chosen_because: str = ""
    """Why ``chosen`` was chosen, in words."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Checkpoints that could not be evaluated, with the reason."""
    scenarios: list[str] = field(default_factory=list)
    """The push scenarios pooled in these samples (empty for a plain samples file)."""
    bootstrap: dict | None = None
    """How the intervals were resampled: ``method`` "exact" (every replicate solved over
    the samples) or "grouped" (from per-group sums; with its ``passes``, ``nodes``,
    ``max_gap`` the largest certified error of a replicate value, ``solved_exactly`` the
    replicates the grid left to an exact solve); None without a bootstrap."""
    sample: dict | None = None
    """What one sample was (the stage's ``unit``, ``psi``, ``sense``, ``burn_in_steps``,
    ``recorded_steps`` and a ``description`` in words); None for a samples file."""
    version: str = field(default=__version__)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @property
    def picks(self) -> list[Pick]:
        """The chosen checkpoint, the worst case's pick where it differs, the mean's pick and the
        last one (the ranked checkpoints are in training order)."""
        return picks_of(
            self.chosen, self.chosen_by_worst_case, self.chosen_by_mean, [c.name for c in self.checkpoints]
        )

    @classmethod
    def from_json(cls, text: str) -> SelectionResult:
        """The result :meth:`to_json` wrote."""
        data = json.loads(text)
        config = data.pop("config")
        config["k"] = tuple(config["k"])
        rows = [CheckpointResult(**c) for c in data.pop("checkpoints")]
        # written before --pick existed: the chosen one was the worst case's
        data.setdefault("chosen_by_worst_case", data["chosen"])
        data.setdefault("chosen_because", f"best worst case at k = {config['primary_k']:g}")
        return cls(config=SelectionConfig(**config), checkpoints=rows, **data)

    def to_csv(self) -> str:
        out = io.StringIO()
        ks = self.config.k
        header = ["checkpoint", "mean", "mean_rank"]
        header += [f"worst_case_k{k:g}" for k in ks] + [f"rank_k{k:g}" for k in ks]
        header += [f"p_best_k{k:g}" for k in ks]
        header += [f"p_beats_last_k{k:g}" for k in ks] + ["p_beats_last_mean"]
        writer = csv.writer(out)
        writer.writerow(header)
        for c in self.checkpoints:
            p_best = c.p_best if c.p_best is not None else [""] * len(ks)
            beats = c.p_beats_last if c.p_beats_last is not None else [""] * len(ks)
            beats_mean = "" if c.p_beats_last_mean is None else c.p_beats_last_mean
            writer.writerow(
                [c.name, c.mean, c.mean_rank, *c.worst_case, *c.rank, *p_best, *beats, beats_mean]
            )
        return out.getvalue()


def select(samples: SampleSet, config: SelectionConfig | None = None) -> SelectionResult:
    """Worst-case values, ranks and (optionally) bootstrap intervals for every checkpoint."""
    config = config or SelectionConfig()
    ks = np.asarray(config.k, dtype=np.float64)
    estimate = worst_case(
        samples.psi, samples.weights, k=ks, divergence=config.divergence, sense=samples.sense
    )
    boot = None
    if config.n_boot:
        boot = bootstrap(
            samples.psi,
            samples.groups,
            k=ks,
            divergence=config.divergence,
            sense=samples.sense,
            weights=samples.weights,
            n_boot=config.n_boot,
            level=config.level,
            # one draw of groups for all checkpoints where they share the groups (common random
            # numbers); ragged sets (a checkpoint without weight in some group) draw their own
            paired=None,
            seed=config.seed,
            estimate=estimate,
        )
    return _result(samples.names, samples.sense, int(samples.psi.shape[1]), config, estimate, boot)


def select_source(
    source: SampleSource, names: tuple[str, ...], sense: str, config: SelectionConfig | None = None
) -> SelectionResult:
    """:func:`select` on samples streamed from a source (a run's per-step samples at GPU scale):
    a few passes over them, memory of one chunk; the bootstrap resamples by group."""
    config = config or SelectionConfig()
    ks = np.asarray(config.k, dtype=np.float64)
    estimate = worst_case(source, k=ks, divergence=config.divergence, sense=sense)
    boot = None
    if config.n_boot:
        boot = bootstrap(
            source, k=ks, divergence=config.divergence, sense=sense, n_boot=config.n_boot,
            level=config.level, paired=None, seed=config.seed, estimate=estimate,
        )  # fmt: skip
    return _result(names, sense, source.shape[1], config, estimate, boot)


STREAM_SAMPLES = 1 << 26
"""Sample sets larger than this (checkpoints x samples; 256 MB of float32) are streamed
from disk in chunks (:func:`select_source`), not loaded whole."""


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


def _result(names, sense: str, samples: int, config: SelectionConfig, estimate, boot) -> SelectionResult:
    ks = np.asarray(config.k, dtype=np.float64)
    ranking = rank(estimate)
    primary = config.primary_index
    last = len(names) - 1  # the checkpoints come in training order
    beats = beats_mean = None
    if boot is not None and last > 0:
        beats = share_beating(boot.replicates, last, sense)
        beats_mean = share_beating(boot.mean_replicates[..., None], last, sense)[:, 0]
    rows = [
        CheckpointResult(
            name=name,
            mean=float(estimate.mean[i]),
            mean_rank=int(ranking.mean_rank[i]),
            worst_case=[float(v) for v in estimate.value[i]],
            rank=[int(r) for r in ranking.rank[i]],
            interval=None
            if boot is None
            else [[float(boot.value_low[i, j]), float(boot.value_high[i, j])] for j in range(ks.size)],
            p_best=None if boot is None else [float(p) for p in boot.p_best[i]],
            p_best_mean=None if boot is None else float(boot.p_best_mean[i]),
            p_beats_last=None if beats is None or i == last else [float(p) for p in beats[i]],
            p_beats_last_mean=None if beats_mean is None or i == last else float(beats_mean[i]),
        )
        for i, name in enumerate(names)
    ]
    how = None
    if boot is not None:
        how = {"method": "exact" if boot.grouped is None else "grouped"}
        if boot.grouped is not None:
            g = boot.grouped
            how.update(passes=g.passes, nodes=g.nodes, max_gap=g.max_gap, solved_exactly=g.solved_exactly)
    best = int(ranking.order[primary, 0])
    pick = recommend(
        config,
        list(names),
        names[best],
        None if beats is None or best == last else float(beats[best, primary]),
    )
    return SelectionResult(
        config=config,
        sense=sense,
        samples_per_checkpoint=samples,
        checkpoints=rows,
        chosen=pick.name,
        chosen_by_mean=names[int(np.argmin(ranking.mean_rank))],
        chosen_by_worst_case=names[best],
        chosen_because=pick.because,
        bootstrap=how,
    )


def write_results(result: SelectionResult, out_dir: str | Path, stem: str = "selection") -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.csv`` atomically into ``out_dir``."""
    out_dir = Path(out_dir)
    json_path = atomic_write(out_dir / f"{stem}.json", lambda f: f.write(result.to_json().encode()))
    csv_path = atomic_write(out_dir / f"{stem}.csv", lambda f: f.write(result.to_csv().encode()))
    return json_path, csv_path


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
    console = console or wide_console()
    console.print(ranking_table(result))
    console.print(f"chosen checkpoint: [bold green]{result.chosen}[/] ({result.chosen_because})")
    if result.chosen_by_mean != result.chosen:
        console.print(f"the plain simulation mean would have chosen {result.chosen_by_mean}")
    if (line := against_last(result)) is not None:
        console.print(line)
    for name, why in result.skipped.items():
        console.print(f"[yellow]not ranked: {name}[/] ({why})")
    for p in paths:
        console.print(f"wrote {p}")
