"""What a user would pick without the worst case, beside its pick.

The selection-quality study judges the worst case against the rules a practitioner reaches
for instead: take the last checkpoint, the best training reward, the fewest falls in
simulation, the best plain mean. The report, the console and W&B show each checkpoint's
numbers for those rules and the checkpoint each rule picks, so that the case for departing
from any of them can be read off at once.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from postconv.ranking.result import SelectionResult
from postconv.storage.checkpoints import curve_at
from postconv.storage.sample_store import SampleIndex, atomic_write_text, fall_counts

TRAIN_WINDOW = 10
"""Logged training iterations averaged up to a checkpoint for its training reward."""


@dataclass(frozen=True)
class RulePick:
    """The checkpoint one selection rule picks."""

    rule: str
    """The rule in words, e.g. "fewest simulation falls"."""
    key: str
    """Its short name in files and on W&B: ``worst_case``, ``mean``, ``last``, ``train_reward``, ``falls``."""
    checkpoint: str | None
    """None where the rule has nothing to go on (no training curve)."""
    tied: int = 1
    """How many checkpoints share the rule's best value (the latest of them is the pick)."""


@dataclass(frozen=True)
class Baselines:
    """Per ranked checkpoint (training order, as in the selection) the baselines' numbers."""

    names: tuple[str, ...]
    iterations: np.ndarray
    """(C,) training iteration."""
    train_reward: np.ndarray | None
    """(C,) the training reward averaged over the :data:`TRAIN_WINDOW` logged iterations up
    to the checkpoint (NaN where none was logged); None without a training curve."""
    falls: np.ndarray
    """(C,) falls in the recorded steps of the selection's sample folders (burn-in after a
    respawn included; every checkpoint recorded alike)."""

    def picks(self, result: SelectionResult) -> list[RulePick]:
        """The worst case's pick and each baseline's, in the order a reader compares them."""
        k = result.config.primary_k
        rules = [
            RulePick(f"worst case at k = {k:g}", "worst_case", result.chosen_by_worst_case),
            RulePick("plain simulation mean", "mean", result.chosen_by_mean),
            RulePick("last checkpoint", "last", self.names[-1]),
        ]
        if self.train_reward is not None and np.isfinite(self.train_reward).any():
            rules.append(_best("training reward", "train_reward", self.names, self.train_reward))
        else:
            rules.append(RulePick("training reward", "train_reward", None, 0))
        rules.append(_best("fewest simulation falls", "falls", self.names, -self.falls.astype(np.float64)))
        return rules

    def rows(self, result: SelectionResult) -> tuple[list[str], list[list]]:
        """Header and one row per checkpoint (training order): iteration, training reward,
        falls, mean, the primary worst case and P(> last) beside each other (None: unknown)."""
        p = result.config.primary_index
        by_name = {c.name: c for c in result.checkpoints}
        k = f"k{result.config.primary_k:g}"
        header = ["checkpoint", "iteration", "train_reward", "sim_falls", "mean", f"worst_case_{k}"]
        header.append(f"p_beats_last_{k}")
        rows = []
        for i, name in enumerate(self.names):
            c = by_name[name]
            reward = None
            if self.train_reward is not None and math.isfinite(self.train_reward[i]):
                reward = float(self.train_reward[i])
            beats = None if c.p_beats_last is None else c.p_beats_last[p]
            rows.append(
                [name, int(self.iterations[i]), reward, int(self.falls[i]), c.mean, c.worst_case[p], beats]
            )
        return header, rows


def _best(rule: str, key: str, names: tuple[str, ...], score: np.ndarray) -> RulePick:
    """The latest checkpoint with the highest finite ``score`` (ties are common for falls)."""
    finite = np.where(np.isfinite(score), score, -np.inf)
    top = finite.max()
    tied = np.flatnonzero(finite == top)
    return RulePick(rule, key, names[int(tied[-1])], int(tied.size))


def baselines_of(
    curve: tuple[np.ndarray, np.ndarray] | None,
    index: SampleIndex,
    result: SelectionResult,
    iterations: dict[str, int],
) -> Baselines:
    """The baselines of ``result``'s checkpoints from the run's training curve
    (:func:`~postconv.storage.checkpoints.training_curve`, None if it logged none) and the
    sample folders of the scenarios the result pooled."""
    names = tuple(c.name for c in result.checkpoints)
    its = np.array([iterations[n] for n in names], dtype=np.int64)
    return Baselines(
        names=names,
        iterations=its,
        train_reward=curve_at(its, curve, window=TRAIN_WINDOW),
        falls=fall_counts(index, names, result.scenarios),
    )


BASELINES_FILE = "baselines.csv"
"""In the report folder: the per-checkpoint rows of :meth:`Baselines.rows`."""


def read_baselines(path: Path, result: SelectionResult) -> Baselines | None:
    """The :class:`Baselines` :func:`write_baselines` wrote for ``result``; None if there is no
    such file or it was written for other samples (a selection rerun without a review)."""
    if not path.is_file():
        return None
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    # the same checkpoints with the same means: the same samples (falls come from them too)
    if [(r["checkpoint"], float(r["mean"])) for r in rows] != [(c.name, c.mean) for c in result.checkpoints]:
        return None
    reward = np.array([float(r["train_reward"]) if r["train_reward"] else np.nan for r in rows])
    return Baselines(
        names=tuple(r["checkpoint"] for r in rows),
        iterations=np.array([int(r["iteration"]) for r in rows], dtype=np.int64),
        train_reward=None if np.isnan(reward).all() else reward,
        falls=np.array([int(r["sim_falls"]) for r in rows], dtype=np.int64),
    )


def write_baselines(path: Path, baselines: Baselines, result: SelectionResult) -> Path:
    """``baselines.csv``: :meth:`Baselines.rows` (an unknown value is an empty cell)."""
    header, rows = baselines.rows(result)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return atomic_write_text(path, out.getvalue())
