r"""How well a ranking predicted what the real robot did.

Given predicted scores (a worst-case value or the plain mean per checkpoint) and real
outcomes (larger is better), report Spearman's rho and Kendall's tau-b (both tie-aware),
top-1 regret and regret@m, and choose the radius k that best predicts past outcomes.

Regret@m is :math:`\max_c y_c - \max_{c \in \text{top-}m} y_c`: what the best of the m
checkpoints one would deploy loses against the best one available (0 is perfect). When
predicted scores tie across the cut, the top-m set is taken uniformly at random among the
tied checkpoints and the regret reported is its exact expectation.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from math import comb

import numpy as np


def _pair(pred, real) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    r = np.asarray(real, dtype=np.float64).reshape(-1)
    if p.size != r.size:
        raise ValueError(
            f"{p.size} predicted scores for {r.size} real outcomes; pass one of each per checkpoint"
        )
    if p.size < 2:
        raise ValueError("agreement needs at least 2 checkpoints with real outcomes")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(r))):
        raise ValueError("predicted scores and real outcomes must be finite numbers")
    return p, r


def spearman(pred, real) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN if either side is constant."""
    p, r = _pair(pred, real)
    if np.ptp(p) == 0 or np.ptp(r) == 0:
        return float("nan")
    from scipy import stats  # scipy.stats costs ~1 s to import: only when asked

    return float(stats.spearmanr(p, r).statistic)


def kendall(pred, real) -> float:
    """Kendall's tau-b (corrects for ties on either side); NaN if either side is constant."""
    p, r = _pair(pred, real)
    if np.ptp(p) == 0 or np.ptp(r) == 0:
        return float("nan")
    from scipy import stats

    return float(stats.kendalltau(p, r, variant="b").statistic)


def regret_at(pred, real, m: int = 1) -> float:
    """Expected regret@m of deploying the best real outcome among the predicted top m.

    Ties in ``pred`` at the cut are broken uniformly at random; the expectation over
    that choice is exact (a sum over which tied checkpoint is the best one chosen).
    """
    p, r = _pair(pred, real)
    if int(m) != m or not 1 <= m <= p.size:
        raise ValueError(f"m must be an integer between 1 and {p.size}; got {m!r}")
    order = np.sort(p)[::-1]
    cut = order[m - 1]
    above = r[p > cut]
    tied = np.sort(r[p == cut])[::-1]  # y_1 >= y_2 >= ... among the tied
    need = m - above.size
    best_above = above.max() if above.size else -np.inf
    g = tied.size
    # P(the best chosen tied checkpoint is y_i) = C(g - i, need - 1) / C(g, need)
    probs = np.array([comb(g - i, need - 1) for i in range(1, g + 1)], dtype=np.float64) / comb(g, need)
    expected_best = float(np.sum(probs * np.maximum(best_above, tied)))
    return float(r.max() - expected_best)


@dataclass(frozen=True)
class Agreement:
    """Agreement of one predictor with real outcomes."""

    spearman: float
    kendall: float
    regret: dict[int, float]
    """regret@m for each requested m (m = 1 is top-1 regret)."""


def agreement(pred, real, at: Sequence[int] = (1, 3)) -> Agreement:
    """Spearman, Kendall and regret@m of predicted scores against real outcomes."""
    p, r = _pair(pred, real)
    ms = sorted({int(m) for m in at if m <= p.size})
    return Agreement(
        spearman=spearman(p, r),
        kendall=kendall(p, r),
        regret={m: regret_at(p, r, m) for m in ms},
    )


@dataclass(frozen=True)
class BestK:
    """The radius that best predicts real outcomes, with a leave-one-out check."""

    k: float
    """The chosen radius: most often best across leave-one-out folds (ties: higher full-data score)."""
    score: np.ndarray
    """(K,) the metric on all checkpoints for each k."""
    loo_score: np.ndarray
    """(K,) mean of the metric over the B leave-one-out subsets."""
    loo_choice: np.ndarray
    """(B,) the k chosen when checkpoint i is left out (NaN where the rest all tie)."""
    stability: float
    """Share of the informative folds that chose ``k`` (a fold whose best radii tie gives each an
    equal part of its vote)."""
    metric: str
    tied: bool = False
    """Every radius scores alike on all checkpoints: none predicts better than another (``k`` is
    then only the first of them)."""


def best_k(values, real, ks, metric: str = "spearman") -> BestK:
    """Choose the k in a sweep whose worst-case ranking best predicts real outcomes.

    For each checkpoint i, k is chosen on the other B - 1 checkpoints by the metric
    (``"spearman"``, ``"kendall"``, or ``"regret"``, the top-1 regret, lower is better);
    the reported k is the one chosen most often. A k that wins on all data but not when
    single checkpoints are left out is fitting noise: ``stability`` says how often it won.

    Args:
        values: (B, K) worst-case values, column j for radius ks[j].
        real: (B,) real outcomes, larger is better.
        ks: (K,) the radii.
    """
    v = np.asarray(values, dtype=np.float64)
    ks = np.asarray(ks, dtype=np.float64).reshape(-1)
    if v.ndim != 2 or v.shape[1] != ks.size:
        raise ValueError(f"values must have shape (B, {ks.size}) for {ks.size} radii; got {v.shape}")
    r = np.asarray(real, dtype=np.float64).reshape(-1)
    if r.size != v.shape[0]:
        raise ValueError(f"{r.size} real outcomes for {v.shape[0]} checkpoints")
    if v.shape[0] < 3:
        raise ValueError("choosing k by leave-one-out needs at least 3 checkpoints with real outcomes")
    scorers = {
        "spearman": spearman,
        "kendall": kendall,
        "regret": lambda p, y: -regret_at(p, y, 1),  # larger is better throughout
    }
    if metric not in scorers:
        raise ValueError(f"unknown metric {metric!r}; choose one of 'spearman', 'kendall', 'regret'")
    score_fn = scorers[metric]

    def scores(rows: np.ndarray) -> np.ndarray:
        s = np.array([score_fn(v[rows, j], r[rows]) for j in range(ks.size)])
        return np.where(np.isnan(s), -np.inf, s)

    everyone = np.arange(v.shape[0])
    full = scores(everyone)
    folds = np.array([scores(np.delete(everyone, i)) for i in everyone])  # (B, K)
    informative = np.isfinite(folds).any(axis=1)  # a fold whose outcomes are all equal says nothing
    if not informative.any():
        raise ValueError(
            "the real outcomes do not vary enough to compare radii; record more distinct outcomes"
        )
    choice = folds.argmax(axis=1)
    # ties split the fold's vote: with few checkpoints every radius often ranks alike, and a
    # vote for the first of them would report a stability nobody measured
    top = (folds == folds.max(axis=1, keepdims=True)) & informative[:, None]
    votes = (top / np.maximum(top.sum(axis=1, keepdims=True), 1)).sum(axis=0)
    winner = int(np.lexsort((-full, -votes))[0])
    finite_full = full[np.isfinite(full)]
    sign = -1.0 if metric == "regret" else 1.0
    finite_folds = np.where(np.isinf(folds), np.nan, folds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a k undefined on every fold stays NaN
        loo = sign * np.nanmean(finite_folds, axis=0)
    return BestK(
        k=float(ks[winner]),
        score=sign * np.where(np.isinf(full), np.nan, full),
        loo_score=loo,
        loo_choice=np.where(informative, ks[choice], np.nan),
        stability=float(votes[winner] / informative.sum()),
        metric=metric,
        tied=bool(finite_full.size == full.size and np.ptp(finite_full) == 0),
    )
