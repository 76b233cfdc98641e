r"""Scores from the selection's samples, and how well they predict held-out outcomes.

A *score* ranks candidates (larger = predicted better). The study compares:

- baselines a user would reach for instead: ``iteration`` (ranks like "take the last
  checkpoint"), ``train_reward`` (the training curve at the checkpoint), ``sim_falls``
  (minus the falls counted in the selection's samples) and ``mean`` (the plain mean of
  the task reward, the worst case at k = 0);
- the worst case :math:`\min_{\rho: D(\rho\|q) \le k} E_\rho[\psi]` for each
  :class:`Variant` (what psi is, what a sample is, binning, divergence) and radius k.

Outcomes come per held-out world as (C, E) per-episode values; a world's outcome of a
candidate is its mean over episodes (survival rate). Agreement is Spearman, Kendall and
regret@1/@3 (:mod:`postconv.selection.agreement`), with intervals from a paired bootstrap
over the outcome episodes (the same resampled episodes for every candidate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from postconv.selection import agreement, discretize, worst_case
from postconv.storage.checkpoints import curve_at
from postconv.storage.sample import per_unit
from postconv.study.samples import SelectionSamples

WINDOW_STEPS = 50
"""Steps per sample in the ``window`` unit (1 s at 50 Hz)."""


@dataclass(frozen=True)
class Variant:
    """One way of running the selection, fixed before any outcome is seen."""

    name: str
    psi: str = "reward"
    """``reward`` (the task's, per step), ``shaping`` (the reward without its alive and
    termination terms: what the policy does while up, falls left out), ``upright`` (minus
    the pelvis tilt, 1 + g_z) or ``height`` (the pelvis height)."""
    unit: str = "step"
    """``step`` (every recorded step a sample), ``window`` (psi summed over 1 s of one env) or
    ``episode`` (one env's recording in one scenario as the stage defines it: psi averaged over
    its settled steps, falls included, so the ball reweights trajectories instead of steps; the
    committed study results were made when an episode was the sum over every recorded step)."""
    bins: tuple[int, ...] | None = None
    """None, ``(J,)`` quantile bins of psi, or ``(J, J2)`` bins of psi x tilt (the paper's
    reward-state binning)."""
    divergence: str = "kl"


VARIANTS: tuple[Variant, ...] = (
    Variant("reward"),
    Variant("reward_chi2", divergence="chi2"),
    Variant("reward_window", unit="window"),
    Variant("reward_episode", unit="episode"),
    Variant("reward_bins16", bins=(16,)),
    Variant("reward_x_tilt_bins8x8", bins=(8, 8)),
    Variant("shaping", psi="shaping"),
    Variant("upright", psi="upright"),
    Variant("height", psi="height"),
)
"""The variants the study compares: ``reward`` was the stage's default when the study ran;
``reward_episode`` (at k = 2) is the default since (the stage averages instead of summing
the steps, which ranks alike)."""
DEFAULT_K: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 0.5, 1.0, 2.0, 4.0)
"""Radii (the pilot saw k >= 0.5 collapse onto the falls, so the grid reaches far below)."""
BASELINES = ("iteration", "train_reward", "sim_falls", "mean")
FALL_TERMS = ("alive", "termination_penalty")
"""Reward terms that only say whether the robot is up: ``shaping`` leaves them out."""


def _psi(samples: SelectionSamples, kind: str) -> np.ndarray:
    """(C, S, T, m) per-step psi."""
    if kind == "reward":
        return samples.reward
    if kind == "shaping":
        if not set(FALL_TERMS) <= set(samples.term_names):
            raise ValueError(
                f"shaping leaves out {FALL_TERMS}; these samples' terms are {samples.term_names}"
            )
        keep = [i for i, n in enumerate(samples.term_names) if n not in FALL_TERMS]
        return samples.terms[..., keep].sum(axis=-1)
    if kind == "upright":
        return -(1.0 + samples.feature("projected_gravity.z"))
    if kind == "height":
        return samples.feature("base_height.z")
    raise ValueError(f"unknown psi {kind!r}; choose reward, shaping, upright or height")


def _rows(x: np.ndarray, unit: str, keep: np.ndarray | None = None) -> np.ndarray:
    """(C, n) samples per candidate from (C, S, T, m) steps: per ``episode`` as the stage defines
    it (:func:`postconv.storage.sample.per_unit` over the ``keep`` (settled) steps when the
    samples carry them), per recorded ``step`` (every step: candidates keep equal sample counts
    here, where the stage weights unsettled steps out), or per 1 s ``window`` (a sum)."""
    if unit == "episode":
        return np.stack([
            np.concatenate([per_unit(x[c, s], unit, None if keep is None else keep[c, s]) for s in range(x.shape[1])])
            for c in range(x.shape[0])
        ])  # fmt: skip
    if unit == "step":
        return x.reshape(len(x), -1)
    if unit == "window":
        C, S, T, m = x.shape
        w = T // WINDOW_STEPS
        if w == 0:
            raise ValueError(f"window samples need >= {WINDOW_STEPS} recorded steps; got {T}")
        return x[:, :, : w * WINDOW_STEPS].reshape(C, S, w, WINDOW_STEPS, m).sum(axis=3).reshape(C, -1)
    raise ValueError(f"unknown unit {unit!r}; choose step, window or episode")


def worst_case_scores(samples: SelectionSamples, variant: Variant, ks: tuple[float, ...]) -> np.ndarray:
    """(C, 1 + K) the variant's value at k = 0 (its plain mean) and at each radius."""
    psi = _rows(_psi(samples, variant.psi), variant.unit, samples.settled)
    grid = np.array((0.0, *ks))
    if variant.bins is None:
        return worst_case(psi, k=grid, divergence=variant.divergence).value
    if len(variant.bins) == 1:
        binned = discretize(psi, on=("psi",), bins=variant.bins[0])
    else:
        tilt = _rows(-(1.0 + samples.feature("projected_gravity.z")), variant.unit, samples.settled)
        binned = discretize(psi, tilt[..., None], on=("psi", 0), bins=variant.bins)
    return worst_case(binned.psi, weights=binned.q, k=grid, divergence=variant.divergence).value


def baseline_scores(samples: SelectionSamples, train_reward: np.ndarray | None) -> dict[str, np.ndarray]:
    """The scores a user has without the worst case, (C,) each (train_reward: NaN if unknown)."""
    return {
        "iteration": samples.iterations.astype(np.float64),
        "train_reward": np.full(len(samples.names), np.nan) if train_reward is None else train_reward,
        "sim_falls": -samples.terminated.reshape(len(samples.names), -1).sum(axis=1).astype(np.float64),
        "mean": samples.reward.reshape(len(samples.names), -1).mean(axis=1),
    }


def all_scores(
    samples: SelectionSamples,
    train_reward: np.ndarray | None,
    variants: tuple[Variant, ...] = VARIANTS,
    ks: tuple[float, ...] = DEFAULT_K,
) -> dict[str, np.ndarray]:
    """Score name -> (C,) for the baselines and ``wc[<variant>,k=<k>]`` (k = 0: ``<variant>`` mean)."""
    scores = baseline_scores(samples, train_reward)
    for v in variants:
        values = worst_case_scores(samples, v, ks)
        scores[f"wc[{v.name},k=0]"] = values[:, 0]
        for j, k in enumerate(ks):
            scores[f"wc[{v.name},k={k:g}]"] = values[:, j + 1]
    return scores


def after_plateau(run) -> tuple:
    """The run's checkpoints from the start of its reward plateau
    (:func:`postconv.storage.checkpoints.converged_from` as the stage used it when the study ran,
    looking only below the plateau; the stage now also looks above it and reports a run still
    drifting at its end as not converged, which two of the study's three runs are: the push
    curriculum keeps moving their reward)."""
    from postconv.storage.checkpoints import converged_from, training_curve

    curve = training_curve(run)
    start = run.checkpoints[0].iteration if curve is None else converged_from(*curve, from_above=False)
    return tuple(c for c in run.checkpoints if c.iteration >= start)


@dataclass(frozen=True)
class Judged:
    """Agreement of one score with one world's outcome."""

    spearman: float
    spearman_lo: float
    spearman_hi: float
    kendall: float
    regret1: float
    regret3: float
    regret1_lo: float
    regret1_hi: float


def _rank_rows(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, axis=-1)


def _spearman_rows(score: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """(B,) Spearman of one (C,) score with each of (B, C) outcome vectors (NaN where constant)."""
    a = _rank_rows(score)
    a = a - a.mean()
    b = _rank_rows(outcomes)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a**2).sum() * (b**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (b @ a) / den, np.nan)


def _regret1_rows(score: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """(B,) top-1 regret of one score against each outcome vector (ties at the top averaged)."""
    top = score == score.max()
    return outcomes.max(axis=1) - outcomes[:, top].mean(axis=1)


def judge(
    score: np.ndarray, episodes: np.ndarray, n_boot: int = 500, seed: int = 0, level: float = 0.9
) -> Judged:
    """How well ``score`` (C,) ranks the outcome ``episodes`` (C, E) averaged over episodes."""
    real = episodes.mean(axis=1)
    if not np.all(np.isfinite(score)) or np.ptp(real) == 0:
        nan = float("nan")
        return Judged(nan, nan, nan, nan, nan, nan, nan, nan)
    point = agreement(score, real, at=(1, 3))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, episodes.shape[1], (n_boot, episodes.shape[1]))
    boot = episodes[:, idx].mean(axis=2).T  # (B, C), episodes resampled alike for every candidate
    rho = _spearman_rows(score, boot)
    reg = _regret1_rows(score, boot)
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    return Judged(
        spearman=point.spearman,
        spearman_lo=float(np.nanquantile(rho, lo)),
        spearman_hi=float(np.nanquantile(rho, hi)),
        kendall=point.kendall,
        regret1=point.regret[1],
        regret3=point.regret.get(3, float("nan")),
        regret1_lo=float(np.quantile(reg, lo)),
        regret1_hi=float(np.quantile(reg, hi)),
    )


__all__ = [
    "BASELINES",
    "DEFAULT_K",
    "VARIANTS",
    "Judged",
    "Variant",
    "all_scores",
    "baseline_scores",
    "curve_at",
    "judge",
    "worst_case_scores",
]
