"""Shifted worlds: documented changes of the robot or its surroundings, named in one option.

A world is written as ``nominal`` or as comma-joined ``KEY=VALUE`` shifts, e.g.
``strength=0.8``, ``latency=20ms``, ``friction=0.5,mass=3``, ``push=1@2-4``,
``command=turn:1``. Its name is that text. :data:`SHIFTS` lists every key with its unit
and meaning; :data:`DEFAULT_WORLDS` is the grid ``postconv sim2sim`` uses when none is
given, spread from mild to severe so that some checkpoints fall where others stand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from postconv.tasks.g1 import DECIMATION, PHYSICS_DT
from postconv.tasks.scenarios import PushScenario

POLICY_DT = PHYSICS_DT * DECIMATION


@dataclass(frozen=True)
class Command:
    """A velocity command schedule: fixed, or drawn from the task's ranges."""

    kind: str
    """``stand``, ``walk`` (forward), ``side`` (left), ``turn`` (yaw rate) or ``mixed``."""
    value: float = 0.0
    """m/s for walk and side, rad/s for turn; unused for stand and mixed."""

    KINDS = ("stand", "walk", "side", "turn", "mixed")
    MIXED_RANGES = ((-1.0, 1.0), (-1.0, 1.0), (-0.5, 0.5))
    """(vx, vy, wz) ranges of ``mixed``: the velocity tasks' command ranges before their
    curriculum widens them (:data:`postconv.tasks.velocity.COMMAND_RANGES`; a test checks)."""
    MIXED_PERIOD_S = 5.0
    """``mixed`` draws a new command this often (every episode sees several)."""

    @staticmethod
    def parse(text: str) -> Command:
        kind, _, value = text.partition(":")
        if kind not in Command.KINDS or (kind in ("walk", "side", "turn")) != bool(value):
            raise ValueError(
                f"command {text!r}: write stand, mixed, walk:VX, side:VY or turn:WZ (m/s or rad/s), e.g. walk:0.5"
            )
        return Command(kind, _finite(float(value), f"command {text!r}") if value else 0.0)

    def fixed(self) -> tuple[float, float, float] | None:
        """(vx, vy, wz) of a fixed schedule; None for ``mixed``."""
        return {
            "stand": (0.0, 0.0, 0.0),
            "walk": (self.value, 0.0, 0.0),
            "side": (0.0, self.value, 0.0),
            "turn": (0.0, 0.0, self.value),
        }.get(self.kind)


@dataclass(frozen=True)
class World:
    """One world: the nominal G1 world changed by the shifts whose values differ from the defaults."""

    name: str = "nominal"
    strength: float = 1.0
    """Actuator strength: stiffness, damping and effort limit of every joint times this (a
    weaker motor or a lower supply voltage). Torque at a given error scales by it."""
    latency_ms: float = 0.0
    """Action latency (ms, a multiple of the 5 ms physics step): a new position target
    reaches the motors this long after the observation it answers. 20 ms = one policy step."""
    obs_delay_ms: float = 0.0
    """Observation delay (ms, a multiple of the 20 ms policy step): the policy senses the
    state this long ago (a slow state estimator or bus); the command and its own last
    action are current."""
    joint_friction: float = 0.0
    """Dry friction (N m) added to every joint (MuJoCo frictionloss)."""
    joint_damping: float = 0.0
    """Viscous damping (N m s/rad) added to every joint."""
    friction: float = 1.0
    """Foot-ground friction coefficient (the stand task's contacts, and every task's evaluation: 1.0)."""
    torso_mass: float = 0.0
    """Mass (kg) added to the torso (a battery, a payload), at the torso's center of mass."""
    com_x: float = 0.0
    """Torso center-of-mass shift forward (m)."""
    com_y: float = 0.0
    """Torso center-of-mass shift to the left (m)."""
    noise: float = 0.0
    """Observation noise as a multiple of the task's training noise (uniform, per step:
    base velocity 0.1, gyro 0.2, gravity 0.05, joint position 0.01, joint velocity 1.5)."""
    gyro_bias: float = 0.0
    """Constant gyro bias (rad/s), in a random direction per episode."""
    tilt_deg: float = 0.0
    """IMU mounting error (degrees): projected gravity and base velocities seen rotated by
    this angle about a random horizontal axis per episode."""
    encoder_bias: float = 0.0
    """Joint encoder offsets (rad), uniform in [-b, b] per joint and episode: the policy
    reads them, and the motors' PD loops, reading the same encoders, hold the joints off
    their targets by them."""
    push: PushScenario | None = None
    """Velocity kicks on the pelvis (as the stage's scenarios: ``V@LOW-HIGH``)."""
    command: Command = Command("mixed")
    """The velocity command schedule."""

    def __post_init__(self) -> None:
        problems = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{f.name} = {value} is not finite")
        if self.strength <= 0:
            problems.append(f"strength must be > 0; got {self.strength}")
        if self.friction <= 0:
            problems.append(f"friction must be > 0; got {self.friction}")
        for name in ("latency_ms", "obs_delay_ms", "joint_friction", "joint_damping", "noise", "gyro_bias"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0; got {getattr(self, name)}")
        if self.tilt_deg < 0 or self.encoder_bias < 0:
            problems.append("tilt and encoder_bias are magnitudes: give them >= 0")
        if self.torso_mass < -5.0:
            problems.append(f"torso_mass {self.torso_mass} kg would leave the torso (7.8 kg) too light")
        if _steps(self.latency_ms, PHYSICS_DT) is None:
            problems.append(
                f"latency {self.latency_ms:g} ms is not a multiple of the {PHYSICS_DT * 1e3:g} ms physics step"
            )
        if _steps(self.obs_delay_ms, POLICY_DT) is None:
            problems.append(
                f"obs_delay {self.obs_delay_ms:g} ms is not a multiple of the {POLICY_DT * 1e3:g} ms policy step"
            )
        if problems:
            raise ValueError(f"world {self.name!r}: " + "; ".join(problems))

    @property
    def latency_physics_steps(self) -> int:
        return _steps(self.latency_ms, PHYSICS_DT)

    @property
    def obs_delay_steps(self) -> int:
        return _steps(self.obs_delay_ms, POLICY_DT)


def _steps(ms: float, dt: float) -> int | None:
    n = ms / (dt * 1e3)
    return round(n) if abs(n - round(n)) < 1e-6 else None


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{what}: {value} is not finite")
    return value


def _ms(text: str) -> float:
    """Milliseconds of ``20ms``, ``0.02s`` or ``20`` (ms)."""
    text = text.strip()
    if text.endswith("ms"):
        return float(text[:-2])
    if text.endswith("s"):
        return float(text[:-1]) * 1e3
    return float(text)


def _push(text: str) -> PushScenario:
    from postconv.tasks.scenarios import parse_scenario

    return no_dynamics(parse_scenario(text))


def no_dynamics(push: PushScenario, said: str = "") -> PushScenario:
    """``push``, refused if it carries the stage's ``+dyn`` draws: a world's pushes are only
    pushes, and its own keys shift the robot."""
    if push.dynamics is not None:
        raise ValueError(
            f"{said + ': ' if said else ''}+dyn draws per-env dynamics in the stage's Isaac Lab samples, not in sim2sim's worlds; "
            "shift the robot with a world's own keys instead (strength, mass, friction, latency, ...)"
        )
    return push


SHIFTS: dict[str, tuple[str, callable]] = {
    "strength": ("strength", float),
    "latency": ("latency_ms", _ms),
    "obs_delay": ("obs_delay_ms", _ms),
    "joint_friction": ("joint_friction", float),
    "joint_damping": ("joint_damping", float),
    "friction": ("friction", float),
    "mass": ("torso_mass", float),
    "com_x": ("com_x", float),
    "com_y": ("com_y", float),
    "noise": ("noise", float),
    "gyro_bias": ("gyro_bias", float),
    "tilt": ("tilt_deg", float),
    "encoder_bias": ("encoder_bias", float),
    "push": ("push", _push),
    "command": ("command", Command.parse),
}
"""World keys: KEY -> (field of :class:`World`, parser). ``latency`` and ``obs_delay``
take ``20ms`` or ``0.02s``; ``push`` takes ``none`` or ``V@LOW-HIGH``."""


def parse_world(text: str, command: Command | None = None) -> World:
    """``nominal`` or comma-joined ``KEY=VALUE`` shifts (keys: :data:`SHIFTS`).

    ``command``: the schedule of a world that names none (default: ``mixed``, the velocity
    tasks' commands; the stand task's worlds stand).
    """
    text = text.strip()
    base = World() if command is None else World(command=command)
    if text == "nominal":
        return base
    values: dict = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in SHIFTS:
            raise ValueError(
                f"world {text!r}: {item!r} is not KEY=VALUE with KEY one of {', '.join(SHIFTS)} "
                "(or write nominal), e.g. strength=0.8,latency=20ms"
            )
        name, parse = SHIFTS[key]
        if name in values:
            raise ValueError(f"world {text!r}: {key} is given twice")
        try:
            values[name] = parse(value)
        except ValueError as err:
            raise ValueError(f"world {text!r}: {key}={value!r}: {err}") from err
    if values.get("push") is not None and values["push"].interval_s is None:
        values["push"] = None
    return replace(base, name=text, **values)


def parse_worlds(texts: list[str] | tuple[str, ...], command: Command | None = None) -> tuple[World, ...]:
    worlds = tuple(parse_world(t, command) for t in texts)
    names = [w.name for w in worlds]
    if not worlds or len(set(names)) != len(names):
        raise ValueError(f"give one or more distinct worlds; got {list(texts)}")
    return worlds


DEFAULT_WORLDS: tuple[str, ...] = (
    "nominal",
    "push=1@2-4",
    "push=1.5@2-4",
    "strength=0.8",
    "strength=0.6",
    "latency=10ms",
    "latency=20ms",
    "latency=40ms",
    "friction=0.4",
    "mass=4,com_x=0.03",
    "joint_friction=0.5,joint_damping=0.5",
    "noise=2,encoder_bias=0.02,tilt=3",
    "obs_delay=20ms",
    "command=turn:1",
    "strength=0.8,latency=20ms,push=1@2-4",
)
"""The default grid: the nominal world, then each kind of shift mild and severe, then a
combination. Severe single shifts and the combination are meant to make some checkpoints
fall while others stand; a world where every checkpoint falls ranks nothing and is
reported as such."""


def world_model(world: World, scenery: bool = False):
    """The compiled G1 of ``world``: the nominal model with its physical shifts applied.

    ``scenery``: a checkered floor and a sky, for rendering (no effect on the physics)."""
    import mujoco

    from postconv.sim2sim.robot import compile_g1, g1_spec

    spec = g1_spec()
    if scenery:
        _add_scenery(spec)
    for act in spec.actuators:
        act.gainprm[0] *= world.strength
        act.biasprm[1] *= world.strength
        act.biasprm[2] *= world.strength
        act.forcerange = [f * world.strength for f in act.forcerange]
    for joint in spec.joints:
        if joint.type == mujoco.mjtJoint.mjJNT_HINGE:
            joint.frictionloss = world.joint_friction
            joint.damping = [world.joint_damping, *list(joint.damping)[1:]]  # [0]: linear damping
    spec.geom("floor").friction[0] = world.friction
    torso = spec.body("torso_link")
    torso.mass += world.torso_mass
    torso.ipos = [torso.ipos[0] + world.com_x, torso.ipos[1] + world.com_y, torso.ipos[2]]
    return compile_g1(spec)


def _add_scenery(spec) -> None:
    import mujoco

    checker = spec.add_texture(name="checker", type=mujoco.mjtTexture.mjTEXTURE_2D)
    checker.builtin = mujoco.mjtBuiltin.mjBUILTIN_CHECKER
    checker.rgb1, checker.rgb2 = [0.42, 0.46, 0.5], [0.32, 0.36, 0.4]
    checker.width = checker.height = 256
    sky = spec.add_texture(name="sky", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX)
    sky.builtin = mujoco.mjtBuiltin.mjBUILTIN_GRADIENT
    sky.rgb1, sky.rgb2 = [0.55, 0.7, 0.85], [0.95, 0.97, 1.0]
    sky.width = sky.height = 256
    material = spec.add_material(name="floor_checker")
    material.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "checker"
    material.texrepeat = [1.0, 1.0]
    material.texuniform = True
    spec.geom("floor").material = "floor_checker"
