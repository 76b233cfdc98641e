"""Rankings by worst-case value, and their uncertainty by a group bootstrap.

Steps of one rollout are strongly correlated, so the bootstrap never resamples single
steps: it resamples whole groups (episodes or envs). With common random numbers (every
checkpoint evaluated on the same envs, commands and pushes) the resampling is paired: one
draw of groups is applied to all checkpoints, so their comparison keeps its pairing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from postconv.selection import _validate
from postconv.selection.estimators import Sense, WorstCase, worst_case
from postconv.selection.grouped import GroupedReplicates, grouped_replicates
from postconv.selection.source import ArraySource, SampleSource


@dataclass(frozen=True)
class Ranking:
    """Checkpoints ordered per radius k, best first. B checkpoints, K radii."""

    rank: np.ndarray
    """(B, K) rank of each checkpoint under the worst-case value at each k; 1 is best."""
    order: np.ndarray
    """(K, B) checkpoint indices, best first, per k."""
    mean_rank: np.ndarray
    """(B,) rank under the plain mean (the direct simulation estimate)."""
    value: np.ndarray
    """(B, K) the worst-case values ranked."""
    mean: np.ndarray
    """(B,) the plain means (the tie-breaker)."""
    sense: str

    @property
    def best(self) -> np.ndarray:
        """(K,) index of the top checkpoint at each k."""
        return self.order[:, 0]


def _order(primary: np.ndarray, secondary: np.ndarray, sense: str) -> np.ndarray:
    """Indices best first: by primary, ties by secondary, then by index (stable)."""
    sign = -1.0 if sense == "reward" else 1.0
    return np.lexsort((np.arange(primary.size), sign * secondary, sign * primary))


def rank(value, mean=None, sense: Sense = "reward") -> Ranking:
    """Order checkpoints by worst-case value per k, ties broken by the plain mean.

    Args:
        value: a :class:`WorstCase` (its value, mean and sense are used), or worst-case
            values of shape (B,) or (B, K).
        mean: (B,) plain means; required unless ``value`` is a WorstCase.
        sense: ``"reward"`` (larger is better) or ``"cost"``; taken from a WorstCase.

    Exact ties in both value and mean keep the checkpoints' given order.
    """
    if isinstance(value, WorstCase):
        if value.value.ndim == 0 or (value.value.ndim == 1 and value.k.size > 1):
            raise ValueError("rank needs a batch of checkpoints: call worst_case with psi of shape (B, n)")
        value, mean, sense = value.value, value.mean, value.sense
    _validate.choice("sense", sense, _validate.SENSES)
    v = np.asarray(value, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2:
        raise ValueError(f"value must have shape (B,) or (B, K); got {np.shape(value)}")
    if mean is None:
        raise ValueError("rank needs the plain means to break ties; pass mean= or a WorstCase")
    m = np.asarray(mean, dtype=np.float64).reshape(-1)
    if m.shape[0] != v.shape[0]:
        raise ValueError(
            f"mean has {m.shape[0]} entries for {v.shape[0]} checkpoints; pass one mean per checkpoint"
        )
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(m))):
        raise ValueError("values and means to rank must be finite")
    order = np.stack([_order(v[:, j], m, sense) for j in range(v.shape[1])])
    ranks = np.empty_like(order)
    for j in range(order.shape[0]):
        ranks[j, order[j]] = np.arange(1, v.shape[0] + 1)
    mean_order = _order(m, np.zeros_like(m), sense)
    mean_rank = np.empty_like(mean_order)
    mean_rank[mean_order] = np.arange(1, m.size + 1)
    return Ranking(rank=ranks.T, order=order, mean_rank=mean_rank, value=v, mean=m, sense=sense)


@dataclass(frozen=True)
class Bootstrap:
    """Group-bootstrap uncertainty of worst-case values. B checkpoints, K radii, R replicates."""

    value_low: np.ndarray
    """(B, K) lower end of the percentile interval of the worst-case value."""
    value_high: np.ndarray
    """(B, K) upper end."""
    mean_low: np.ndarray
    """(B,) lower end of the interval of the plain mean."""
    mean_high: np.ndarray
    """(B,) upper end."""
    p_best: np.ndarray
    """(B, K) share of replicates in which the checkpoint ranks first by worst-case value
    (ties share the credit); each column sums to 1."""
    p_best_mean: np.ndarray
    """(B,) the same under the plain mean."""
    replicates: np.ndarray
    """(R, B, K) worst-case values of every replicate."""
    level: float
    """Coverage of the intervals, e.g. 0.9."""
    grouped: GroupedReplicates | None = None
    """How the grouped method went (passes, nodes, replicates off its grid); None when exact."""
    mean_replicates: np.ndarray | None = None
    """(R, B) plain means of every replicate."""


BootstrapMethod = Literal["auto", "exact", "grouped"]

EXACT_WORK = 1 << 27
"""``method="auto"`` resamples per sample while replicates x checkpoints x samples is at most
this (a few seconds here), from per-group sums above it when groups hold MIN_GROUP_SIZE samples or more
on average (the per-group sums are B x nodes x G)."""
MIN_GROUP_SIZE = 8
"""Samples a bootstrap group holds on average, at least, for resampling by group: the
grouped method keeps sums per group, as many as the samples when groups are finer."""


def bootstrap(
    psi,
    groups=None,
    k=2.0,
    divergence: str = "kl",
    sense: Sense = "reward",
    weights=None,
    n_boot: int = 200,
    level: float = 0.9,
    paired: bool | None = True,
    seed: int = 0,
    method: BootstrapMethod = "auto",
    estimate: WorstCase | None = None,
) -> Bootstrap:
    """Percentile intervals and P(best) by resampling whole groups of samples.

    Each replicate draws the G groups with replacement (G draws); a sample's weight in the
    replicate is its base weight times the number of times its group was drawn, and the
    worst case is solved under those weights.

    Args:
        psi: (B, n) samples of B checkpoints, or a
            :class:`~postconv.selection.source.SampleSource` (which carries the groups and
            weights: pass neither).
        groups: (n,) or (B, n) group label (episode or env id) per sample.
        k, divergence, sense, weights: as for :func:`~postconv.selection.estimators`.
        n_boot: number of replicates R.
        level: interval coverage in (0, 1).
        paired: one draw of groups for all checkpoints (right under common random numbers,
            where group g is the same env/episode for every checkpoint); else one per
            checkpoint. None: paired when the checkpoints share the group labels and have
            weight in the same groups (a source: as known after its first pass), as
            :func:`postconv.ranking.select.select` resamples.
        seed: seed of the resampling.
        method: ``"exact"`` solves every replicate over the samples (R solves, the
            samples in memory R at a time); ``"grouped"`` finds every replicate's optimum
            from per-group sums at a grid of multipliers (:mod:`postconv.selection.grouped`:
            one to six passes, and those of an exact solve of what stays loose; memory of
            B x nodes x G sums and one chunk; every value
            certified within ``Bootstrap.grouped.max_gap`` of its exact optimum, means
            exact); ``"auto"`` takes the exact one while R x B x n <= :data:`EXACT_WORK` or
            groups hold fewer than 8 samples on average. A source is always grouped.
        estimate: the full-sample :func:`~postconv.selection.worst_case` of the same
            samples, k, divergence and sense if already solved (the grouped method needs it).
    """
    if int(n_boot) != n_boot or n_boot < 2:
        raise ValueError(f"n_boot must be an integer >= 2; got {n_boot!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    _validate.choice("method", method, ("auto", "exact", "grouped"))
    ks = _validate.radii(k)
    rng = np.random.default_rng(seed)
    if isinstance(psi, SampleSource):
        if groups is not None or weights is not None:
            raise ValueError(
                "a sample source carries its own groups and weights; pass groups=None, weights=None"
            )
        if method == "exact":
            raise ValueError(
                "method='exact' needs the samples in memory; a sample source is resampled by group"
            )
        return _grouped(psi, ks, divergence, sense, n_boot, level, paired, rng, estimate)
    x = _validate.samples(psi)
    if x.ndim != 2:
        raise ValueError("bootstrap needs psi of shape (B, n): one row of samples per checkpoint")
    if groups is None:
        raise ValueError("bootstrap needs groups: the episode or env of each sample, shape (n,) or (B, n)")
    b, n = x.shape
    g = _validate.on_host(groups)
    if g.shape not in ((n,), (b, n)):
        raise ValueError(
            f"groups shape {g.shape} does not match psi shape {(b, n)}; pass one label per sample"
        )
    if g.ndim == 2 and (g == g[:1]).all():
        g = g[0]  # labels shared by the checkpoints, stored once per checkpoint
    if method == "grouped" and g.ndim != 1:
        raise ValueError(
            "method='grouped' needs one group label per sample shared by the checkpoints: shape (n,)"
        )
    many_per_group = g.ndim == 1 and len(np.unique(g)) * MIN_GROUP_SIZE <= n
    if method == "grouped" or (method == "auto" and many_per_group and n_boot * b * n > EXACT_WORK):
        source = ArraySource(x, weights, g)
        return _grouped(source, ks, divergence, sense, n_boot, level, paired, rng, estimate)
    base = (
        np.ones((b, n))
        if weights is None
        else np.broadcast_to(_validate.on_host(weights).astype(np.float64), (b, n))
    )
    labels = np.unique(g, return_inverse=True)[1].reshape(g.shape)
    labels = np.broadcast_to(labels, (b, n))
    live = np.stack(
        [np.bincount(labels[i], weights=base[i], minlength=labels.max() + 1) > 0 for i in range(b)]
    )

    pair = (g.ndim == 1 and bool((live == live[0]).all())) if paired is None else paired
    values = np.empty((n_boot, b, ks.size))
    means = np.empty((n_boot, b))
    per_call = max(1, int(2**24 // max(1, b * n)))  # replicates solved together
    for start in range(0, n_boot, per_call):
        stop = min(n_boot, start + per_call)
        drawn = _draw_counts(rng, live, stop - start, pair)  # (R', G) or (B, R', G)
        w = (
            np.stack([(drawn if drawn.ndim == 2 else drawn[i])[:, labels[i]] for i in range(b)], axis=1)
            * base
        )  # (R', B, n)
        result = worst_case(
            x.repeat(stop - start, 1),
            weights=w.reshape(-1, n),
            k=ks,
            divergence=divergence,
            sense=sense,
        )
        values[start:stop] = result.value.reshape(stop - start, b, ks.size)
        means[start:stop] = result.mean.reshape(stop - start, b)
    return _summary(values, means, level, sense)


def _grouped(source, ks, divergence, sense, n_boot, level, paired, rng, estimate) -> Bootstrap:
    if estimate is None:
        estimate = worst_case(source, k=ks, divergence=divergence, sense=sense)
    elif (
        estimate.value.ndim != 2
        or estimate.k.size != ks.size
        or not np.allclose(estimate.k, ks)
        or (estimate.divergence, estimate.sense) != (divergence, sense)
    ):
        raise ValueError(
            "estimate must be the worst case of the same samples, k sweep, divergence and sense: "
            "worst_case(psi, k=[...], divergence=..., sense=...) with k as a list"
        )

    def draw(mass: np.ndarray) -> np.ndarray:
        live = mass > 0
        return _draw_counts(rng, live, n_boot, (live == live[0]).all() if paired is None else paired)

    reps = grouped_replicates(source, estimate, draw)
    return _summary(reps.values, reps.means, level, sense, reps)


def _summary(values: np.ndarray, means: np.ndarray, level: float, sense: str, grouped=None) -> Bootstrap:
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha], axis=0)
    mlo, mhi = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
    return Bootstrap(
        value_low=lo,
        value_high=hi,
        mean_low=mlo,
        mean_high=mhi,
        p_best=_share_best(values, sense),
        p_best_mean=_share_best(means[..., None], sense)[:, 0],
        replicates=values,
        level=level,
        grouped=grouped,
        mean_replicates=means,
    )


def _draw_counts(rng: np.random.Generator, live: np.ndarray, n_boot: int, paired: bool) -> np.ndarray:
    """Times each group is drawn: (R, G) shared by the checkpoints when paired, else (B, R, G).

    ``live`` (B, G): the groups that carry weight for each checkpoint (padding does not); a
    replicate draws as many groups as there are live ones, uniformly with replacement."""
    if paired:
        if not (live == live[0]).all():
            raise ValueError(
                "paired bootstrap needs every checkpoint to have samples of every group; "
                "give all checkpoints the same group labels (common random numbers) or pass paired=False"
            )
        rows = [live[0]]
    else:
        rows = list(live)
    out = np.zeros((len(rows), n_boot, live.shape[1]))
    for i, row in enumerate(rows):
        size = int(row.sum())
        out[i][:, row] = rng.multinomial(size, np.full(size, 1.0 / size), size=n_boot)
    return out[0] if paired else out


def share_beating(values: np.ndarray, reference: int, sense: str = "reward") -> np.ndarray:
    """(R, B, K) replicate values -> (B, K): the share of replicates in which each checkpoint's
    value is better than checkpoint ``reference``'s, ties counting half (the reference: 0.5).

    With paired replicates (the same groups drawn for every checkpoint) this is the bootstrap
    probability :math:`P(v_b > v_{ref})` that a user weighs before leaving, say, the last
    checkpoint for another one."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3 or not 0 <= reference < values.shape[1]:
        raise ValueError(
            f"values must be (replicates, checkpoints, radii) and reference a checkpoint index; got shape "
            f"{values.shape} and reference {reference}"
        )
    signed = values if sense == "reward" else -values
    ref = signed[:, reference : reference + 1]
    return ((signed > ref) + 0.5 * (signed == ref)).mean(axis=0)


def _share_best(values: np.ndarray, sense: str) -> np.ndarray:
    """(R, B, K) -> (B, K): share of replicates each checkpoint is best in; ties split."""
    signed = values if sense == "reward" else -values
    top = signed.max(axis=1, keepdims=True)
    winners = signed == top
    return (winners / winners.sum(axis=1, keepdims=True)).mean(axis=0)
