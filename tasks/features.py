"""The state features the stage can record with every sample: plain data (names and components).

How each is read from a live env is the rollout's business
(:func:`postconv.evaluation.rollout.read_feature`); the C MuJoCo twin computes the same columns.
"""

from __future__ import annotations

FEATURES: dict[str, tuple[str, ...]] = {
    "base_lin_vel": ("x", "y", "z"),
    "base_ang_vel": ("x", "y", "z"),
    "projected_gravity": ("x", "y", "z"),
    "base_height": ("z",),
    "command": ("vx", "vy", "wz"),
}
"""State features that can be recorded, with their components."""


def feature_names(features: tuple[str, ...] = tuple(FEATURES)) -> tuple[str, ...]:
    """Column names of the recorded features, e.g. ``base_lin_vel.x``."""
    return tuple(f"{f}.{c}" for f in features for c in FEATURES[f])
