"""The options of ``postconv sim2sim`` and its margin search, as plain data.

Nothing here imports MuJoCo, torch or numpy: the CLI reads the defaults and choices from
these classes to build its parser, and a bad option fails before any simulation loads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from postconv.sim2sim.worlds import DEFAULT_WORLDS, POLICY_DT, no_dynamics, parse_worlds
from postconv.tasks.scenarios import PushScenario, parse_scenario


@dataclass(frozen=True)
class EpisodeSpec:
    """How long and how many episodes each checkpoint runs per world."""

    episodes: int = 32
    """Episodes per checkpoint and world (slots; the same for every checkpoint)."""
    seconds: float = 10.0
    """Episode length (s of simulated time)."""
    seed: int = 0
    """Seed of the common random numbers."""

    def __post_init__(self) -> None:
        if self.episodes < 1 or not (math.isfinite(self.seconds) and self.seconds >= POLICY_DT):
            raise ValueError(
                f"episodes must be >= 1 and seconds >= {POLICY_DT} (one policy step); got {self.episodes}, {self.seconds}"
            )
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0; got {self.seed}")

    @property
    def steps(self) -> int:
        return round(self.seconds / POLICY_DT)


@dataclass(frozen=True)
class StressKind:
    """One kind of shift, searched over a magnitude from ``bottom`` (the base world) to ``top``."""

    name: str
    """Key of the kind: ``margin[NAME]`` in ``outcomes.csv``."""
    description: str
    """What one unit of magnitude changes."""
    unit: str
    top: float
    """The most severe magnitude searched."""
    shift: Callable[[float, PushScenario | None], str]
    """(magnitude, base pushes) -> the world's comma-joined shifts (:func:`parse_world` grammar)."""
    step: float = 0.0
    """Lattice the magnitude snaps to (0: any value, rounded to 3 decimals for the world's name)."""
    from_push: bool = False
    """The magnitude is the push speed itself: the base world sits at the base pushes' speed."""

    def bottom(self, base_push: PushScenario | None) -> float:
        """The magnitude of the base world."""
        return _speed(base_push) if self.from_push else 0.0

    def snap(self, magnitude: float) -> float:
        if self.step:
            return round(round(magnitude / self.step) * self.step, 9)
        return round(magnitude, 3)


DEFAULT_INTERVAL = (1.0, 3.0)
"""Push intervals (s) of the push and combined kinds when the base world has no pushes."""


def _push_text(velocity: float, push: PushScenario | None) -> str:
    """``push=V@LOW-HIGH`` at the base pushes' intervals, or ``push=none`` for no speed."""
    if velocity <= 0:
        return "push=none"
    low, high = push.interval_s if push is not None else DEFAULT_INTERVAL
    return f"push={velocity:g}@{low:g}-{high:g}"


def _speed(push: PushScenario | None) -> float:
    return push.velocity if push is not None else 0.0


def _with_base(item: str) -> Callable[[float, PushScenario | None], str]:
    """A kind whose shift is ``item`` (formatted with the magnitude m), under the base pushes."""
    return lambda m, push: f"{item.format(m=m, one_minus=round(1.0 - m, 6))},{_push_text(_speed(push), push)}"


def _push_kind(m: float, push: PushScenario | None) -> str:
    return _push_text(m, push)


def _combined(m: float, push: PushScenario | None) -> str:
    """The default grid's combination (strength 0.8, 20 ms latency, pushes 0.5 m/s harder), m times."""
    latency = round(4 * m) * 5  # 20 ms per unit, on the 5 ms physics step
    return (
        f"strength={round(1 - 0.2 * m, 6):g},latency={latency}ms,{_push_text(_speed(push) + 0.5 * m, push)}"
    )


KINDS: dict[str, StressKind] = {
    k.name: k
    for k in (
        StressKind("strength", "actuator strength lost (share of stiffness, damping and torque)", "", 0.8,
                   _with_base("strength={one_minus:g}")),
        StressKind("latency", "action latency", "ms", 100.0, _with_base("latency={m:g}ms"), step=5.0),
        StressKind("obs_delay", "observation delay", "ms", 200.0, _with_base("obs_delay={m:g}ms"), step=20.0),
        StressKind("push", "push speed (m/s kicks at the base pushes' intervals)", "m/s", 3.0, _push_kind,
                   from_push=True),
        StressKind("mass", "mass added to the torso", "kg", 40.0, _with_base("mass={m:g}")),
        StressKind("friction", "foot friction lost (share of the nominal 1.0)", "", 0.95,
                   _with_base("friction={one_minus:g}")),
        StressKind("joint_friction", "dry friction (N m) and damping (N m s/rad) added to every joint", "N m",
                   10.0, _with_base("joint_friction={m:g},joint_damping={m:g}")),
        StressKind("noise", "observation noise, multiples of the training noise", "x", 30.0,
                   _with_base("noise={m:g}")),
        StressKind("combined", "per unit: strength -0.2, latency +20 ms, pushes +0.5 m/s", "x", 4.0, _combined),
    )
}  # fmt: skip
"""The kinds of shift a margin is searched for, by key."""


@dataclass(frozen=True)
class StressConfig:
    """Options of the margin search (``postconv sim2sim --stress``)."""

    kinds: tuple[str, ...] = tuple(KINDS)
    """Kinds of shift to search (keys of :data:`KINDS`)."""
    share: float = 0.5
    """A checkpoint survives a magnitude when at least this share of its episodes survive."""
    rounds: int = 3
    """Bisection rounds after the bracket (each at most one fixed world's episodes)."""
    base_push: str = "0.5@1-3"
    """Pushes in every world of the search (``none`` or ``V@LOW-HIGH``): a robot that is never
    pushed shows few of its weaknesses. The push kind searches their speed."""
    n_boot: int = 200
    """Episode resamples for the interval (0: none)."""
    level: float = 0.9
    """Interval coverage."""

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"stress kinds {list(self.kinds)}: give distinct kinds among {', '.join(KINDS)}")
        if not 0 < self.share < 1:
            raise ValueError(f"stress share must be between 0 and 1 (exclusive); got {self.share}")
        if self.rounds < 0 or self.n_boot < 0 or not 0 < self.level < 1:
            raise ValueError(
                f"stress rounds and n_boot must be >= 0 and level in (0, 1); got {self.rounds}, {self.n_boot}, {self.level}"
            )
        if _speed(self.push) >= KINDS["push"].top:  # parsed now: a bad scenario fails before any work
            raise ValueError(
                f"stress base pushes {self.base_push}: their speed must stay below the push kind's top "
                f"({KINDS['push'].top:g} m/s), which the push margin is searched up to"
            )

    @property
    def push(self) -> PushScenario | None:

        push = no_dynamics(parse_scenario(self.base_push), f"--stress-push {self.base_push}")
        return push if push.interval_s is not None else None

    @property
    def base_world(self) -> str:
        return _push_text(_speed(self.push), self.push)


@dataclass(frozen=True)
class Sim2SimConfig:
    """Every option of ``postconv sim2sim``."""

    worlds: tuple[str, ...] = DEFAULT_WORLDS
    """Worlds to replay in (:func:`postconv.sim2sim.worlds.parse_world` grammar)."""
    episodes: int = 32
    """Episodes per checkpoint and world (identical for every checkpoint)."""
    seconds: float = 10.0
    """Episode length (s)."""
    seed: int = 0
    """Seed of the common random numbers."""
    threads: int | None = None
    """Physics threads (default: every core)."""
    trust: bool = False
    """Load checkpoints that need full unpickling (runs code from the file)."""
    wandb: bool = True
    """Add the judgement to the selection's W&B run."""
    stress: StressConfig | None = None
    """Also search each checkpoint's robustness margin per kind of shift (``--stress``)."""
    video: bool = True
    """Render the picks (the chosen checkpoint, the mean's pick, the last one and the worst
    case's pick where ``--pick`` chose another) side by side in a shifted
    world (skipped, with a note, where no OpenGL backend loads)."""

    def __post_init__(self) -> None:
        parse_worlds(self.worlds)  # every world checked before any work
        EpisodeSpec(self.episodes, self.seconds, self.seed)
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1; got {self.threads}")

    @property
    def spec(self) -> EpisodeSpec:
        return EpisodeSpec(self.episodes, self.seconds, self.seed)
