"""What the selection decided (:class:`SelectionResult`), as JSON and CSV on disk."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from postconv import __version__
from postconv.ranking.config import SelectionConfig
from postconv.storage.samples_file import atomic_write


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
        config.setdefault("pick", "worst-case")  # written before --pick existed: the worst case chose
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


def write_results(result: SelectionResult, out_dir: str | Path, stem: str = "selection") -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.csv`` atomically into ``out_dir``."""
    out_dir = Path(out_dir)
    json_path = atomic_write(out_dir / f"{stem}.json", lambda f: f.write(result.to_json().encode()))
    csv_path = atomic_write(out_dir / f"{stem}.csv", lambda f: f.write(result.to_csv().encode()))
    return json_path, csv_path
