"""Selection on a sample set: samples -> worst-case estimates -> ranking and bootstrap -> the
pick rule -> a :class:`~postconv.ranking.result.SelectionResult`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from postconv.ranking.config import SelectionConfig
from postconv.ranking.result import CheckpointResult, SelectionResult
from postconv.selection import bootstrap, rank, share_beating, worst_case
from postconv.selection.source import SampleSource
from postconv.storage.samples_file import SampleSet


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
        return Recommendation(
            last,
            f"the last checkpoint: no bootstrap (--n-boot 0), so no evidence that the worst case's pick "
            f"{by_worst_case} beats it (--pick evidence)",
        )
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
