"""Push scenarios of the G1 tasks: plain data, importable without Isaac Lab."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PushScenario:
    """A push disturbance: planar velocity kicks at random intervals, or none."""

    name: str
    """Label in results, e.g. ``"push_0.5"``."""
    interval_s: tuple[float, float] | None
    """Seconds between pushes, drawn uniformly per env; None turns pushes off."""
    velocity: float = 0.0
    """Largest kick (m/s): each push adds a velocity uniform in [-v, v] to x and y."""

    def __post_init__(self) -> None:
        if self.interval_s is not None:
            lo, hi = self.interval_s
            if not 0 < lo <= hi < math.inf:
                raise ValueError(
                    f"push interval must satisfy 0 < low <= high < inf (s); got {self.interval_s}"
                )
            if not 0 < self.velocity < math.inf:
                raise ValueError(
                    f"push velocity must be a finite number > 0 (m/s) when pushes are on; got {self.velocity}"
                )


NO_PUSH = PushScenario("no_push", None)


__all__ = ["NO_PUSH", "PushScenario"]
