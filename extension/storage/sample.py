"""What one sample of the selection is, in one place: the stage, the report's charts, the
study and the C MuJoCo twin's samples all go through these functions.

A rollout records, per env slot and step, the reward terms, the task reward (psi) and state
features (:mod:`postconv.tasks.features`). The selection counts only **settled** steps (at
least the burn-in after the env's last reset, and every step that ended in a fall), and
takes one sample per **unit**: per ``episode`` (an env slot's recording, its per-step value
averaged over its settled steps) or per ``step``. Psi is the task reward or a weighted sum of
the stored terms (:func:`term_vector`).
"""

from __future__ import annotations

import numpy as np

UNITS = ("episode", "step")
"""What one sample of the selection is: an env slot's whole recording (its per-step reward
averaged over its settled steps, falls included) or every settled step."""


def steps_since_reset(episode: np.ndarray, age_at_start: np.ndarray | int) -> np.ndarray:
    """(T, m) steps since each env's last reset, from ``episode.npy`` (an env's episode index
    rises by one at the step after a termination or time-out) and each env's age at the first
    recorded step (``meta.json`` ``age_at_start``: the burn-in, less if the env reset during it)."""
    steps = np.arange(len(episode))[:, None]
    began = np.vstack([np.zeros((1, episode.shape[1]), bool), episode[1:] != episode[:-1]])
    last = np.maximum.accumulate(np.where(began, steps, -1), axis=0)
    return np.where(last < 0, steps + np.asarray(age_at_start), steps - last)


def settled_steps(
    episode: np.ndarray, terminated: np.ndarray, age_at_start: np.ndarray | int, burn_in: int
) -> np.ndarray:
    """(T, m) the steps the selection counts: those at least ``burn_in`` steps after the env's
    last reset (the respawn after a fall starts with root velocities up to 0.5 m/s, as the
    rollout's start does), and every step that ended in a fall, however soon after a reset
    (a fall is always counted, once)."""
    return (steps_since_reset(episode, np.asarray(age_at_start)) >= burn_in) | terminated


def per_unit(x: np.ndarray, unit: str, keep: np.ndarray | None = None) -> np.ndarray:
    """(T, m, ...) per-step values -> samples: (T * m, ...) per step (only the ``keep`` ones
    when given), or (m, ...) per episode (each env slot's mean over its ``keep`` steps)."""
    if unit == "step":
        flat = x.reshape(-1, *x.shape[2:])
        return flat if keep is None else flat[keep.reshape(-1)]
    if unit == "episode":
        if keep is None:
            return x.mean(axis=0, dtype=np.float64).astype(np.float32)
        w = keep.reshape(*keep.shape, *([1] * (x.ndim - 2))).astype(np.float64)
        return ((x * w).sum(axis=0) / np.maximum(w.sum(axis=0), 1.0)).astype(np.float32)
    raise ValueError(f"unknown unit {unit!r}; choose one of {', '.join(UNITS)}")


def term_vector(term_weights: dict[str, float], term_names: tuple[str, ...]) -> np.ndarray:
    """(R,) float32 weights of the run's reward terms, in their stored order."""
    unknown = sorted(set(term_weights) - set(term_names))
    if unknown:
        raise ValueError(f"unknown reward terms {unknown} in psi; the run's terms are {list(term_names)}")
    return np.array([term_weights.get(n, 0.0) for n in term_names], dtype=np.float32)
