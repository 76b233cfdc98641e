"""Evaluation scenarios of the G1 tasks: plain data, importable without Isaac Lab.

A scenario is a push disturbance, optionally with per-env dynamics draws
(:class:`DynamicsDraw`) so the selection samples see robots that are a little weaker,
heavier, slipperier or slower to act than the nominal one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DynamicsDraw:
    """Per-env dynamics shifts, drawn once per env slot and seed from common random numbers.

    Every checkpoint meets the same draw in the same slot; the draws hold for the whole
    rollout of a seed (respawns keep them). Ranges are milder than the sim-to-sim stress
    search's (strength lost up to 0.8, torso mass up to +40 kg, latency up to 100 ms), so the
    worst case can reweight toward the hard draws without the samples being mostly falls.
    """

    strength: tuple[float, float] = (0.8, 1.0)
    """Factor on every joint's PD stiffness and damping (actuator strength), uniform."""
    torso_mass_kg: tuple[float, float] = (0.0, 5.0)
    """Mass added to the torso (kg), uniform; its inertia scales with it."""
    foot_friction: tuple[float, float] = (0.4, 1.0)
    """Friction coefficient of the feet, uniform (the ground sits below the range)."""
    action_delay_share: float = 0.25
    """Share of env slots whose actions reach the joints one policy step (20 ms) late."""

    def __post_init__(self) -> None:
        for name in ("strength", "torso_mass_kg", "foot_friction"):
            lo, hi = getattr(self, name)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(f"dynamics {name} must be a finite range low <= high; got {(lo, hi)}")
        if not self.strength[0] > 0:
            raise ValueError(f"dynamics strength must stay > 0; got {self.strength}")
        if not self.foot_friction[0] > 0:
            raise ValueError(f"dynamics foot_friction must stay > 0; got {self.foot_friction}")
        if not 0 <= self.action_delay_share <= 1:
            raise ValueError(f"dynamics action_delay_share must be in [0, 1]; got {self.action_delay_share}")

    def describe(self) -> str:
        """The draws in words, e.g. for help text."""
        return (
            f"PD gains x{self.strength[0]:g}-{self.strength[1]:g}, torso +{self.torso_mass_kg[0]:g}-"
            f"{self.torso_mass_kg[1]:g} kg, foot friction {self.foot_friction[0]:g}-{self.foot_friction[1]:g}, "
            f"a one-step action delay in a share {self.action_delay_share:g} of the envs"
        )


MILD_DYNAMICS = DynamicsDraw()
"""The ``+dyn`` suffix of the scenario grammar."""


@dataclass(frozen=True)
class PushScenario:
    """A push disturbance: planar velocity kicks at random intervals, or none; optionally
    with per-env dynamics draws."""

    name: str
    """Label in results, e.g. ``"push_0.5_1-3s"``."""
    interval_s: tuple[float, float] | None
    """Seconds between pushes, drawn uniformly per env; None turns pushes off."""
    velocity: float = 0.0
    """Largest kick (m/s): each push adds a velocity uniform in [-v, v] to x and y."""
    dynamics: DynamicsDraw | None = None
    """Per-env dynamics draws, or None for the nominal robot."""

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

    def record(self) -> dict:
        """The scenario as recorded in sample folders; a nominal scenario's record has no
        ``dynamics`` key, so samples made before dynamics draws existed keep their identity."""
        record = asdict(self)
        if self.dynamics is None:
            del record["dynamics"]
        return record


NO_PUSH = PushScenario("no_push", None)


def parse_scenario(text: str) -> PushScenario:
    """``none`` or ``VELOCITY@LOW-HIGH`` (m/s kicks every LOW to HIGH s), e.g. ``0.5@1-3``;
    a ``+dyn`` suffix adds per-env dynamics draws (:data:`~postconv.tasks.scenarios.MILD_DYNAMICS`:
    weaker actuators, a heavier torso, lower foot friction, a one-step action delay)."""
    base, plus, suffix = text.partition("+")
    if plus and suffix != "dyn":
        raise ValueError(
            f"scenario {text!r}: the only suffix is '+dyn' (per-env dynamics draws), e.g. 0.5@1-3+dyn"
        )
    if base in ("none", NO_PUSH.name):
        scenario = NO_PUSH
    else:
        try:
            velocity, interval = base.split("@")
            low, high = (float(x) for x in interval.split("-"))
            kick = float(velocity)
        except ValueError as err:
            raise ValueError(
                f"scenario {text!r}: write 'none' or VELOCITY@LOW-HIGH, e.g. 0.5@1-3 (0.5 m/s kicks every 1 to 3 s), "
                "optionally with '+dyn'"
            ) from err
        scenario = PushScenario(f"push_{kick:g}_{low:g}-{high:g}s", (low, high), kick)
    if not plus:
        return scenario
    return dataclasses.replace(scenario, name=f"{scenario.name}_dyn", dynamics=MILD_DYNAMICS)


DEFAULT_SCENARIOS = ("none", "0.5@1-3", "1@2-4")
"""No pushes, the disturbed task's training pushes, and stronger ones less often."""


def scenario_text(record: dict) -> str:
    """The scenario grammar (``none``, ``V@LOW-HIGH``, either with ``+dyn``) of a record."""
    if record.get("interval_s") is None:
        text = "none"
    else:
        lo, hi = record["interval_s"]
        text = f"{record['velocity']:g}@{lo:g}-{hi:g}"
    dynamics = record.get("dynamics")
    if dynamics is None:
        return text
    if (
        DynamicsDraw(**{k: tuple(v) if isinstance(v, list) else v for k, v in dynamics.items()})
        != MILD_DYNAMICS
    ):
        raise ValueError(
            f"scenario {record.get('name')!r} has dynamics draws the grammar cannot write: {dynamics}"
        )
    return f"{text}+dyn"


__all__ = [
    "DEFAULT_SCENARIOS",
    "MILD_DYNAMICS",
    "NO_PUSH",
    "DynamicsDraw",
    "PushScenario",
    "parse_scenario",
    "scenario_text",
]
