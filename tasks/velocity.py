"""G1 velocity tracking on flat ground, calm and under pushes, as Isaac Lab 3.0 env configs.

The velocity tasks follow mjlab 1.6.0's G1 velocity recipe, the one known to train this
robot with this actuator model (soft PD at 10 Hz, damping ratio 2, reflected-inertia
armature): its rewards and weights, terminations, reset, push and friction events, command
ranges and curriculum, and PPO settings (:mod:`postconv.tasks.agents`), expressed with Isaac
Lab's managers and the 29-DoF names. Each value taken from mjlab cites its file and line
(``velocity_env_cfg.py`` = ``mjlab/tasks/velocity/velocity_env_cfg.py``, ``g1/env_cfgs.py`` =
``mjlab/tasks/velocity/config/g1/env_cfgs.py``); where an Isaac Lab or postconv choice is
kept instead, the config says why. The physics is Newton's MuJoCo-Warp solver: the velocity
tasks' foot-friction event writes Newton's model and relies on MuJoCo-Warp's friction rule,
so under Isaac Lab's PhysX preset (with Isaac Sim) it stops with a message saying so. The ground is a local plane, so nothing is fetched from Isaac Lab's asset
server.

- :class:`G1FlatEnvCfg` (``PostConv-Velocity-Flat-G1``): the recipe without pushes.
- :class:`G1DisturbedEnvCfg` (``PostConv-Velocity-Disturbed-G1``): the recipe with its pushes
  every 1 to 3 s of simulated time, counted across resets.
- :class:`G1StandEnvCfg` (``PostConv-Stand-G1``): stand still under pushes and recover
  (zero command; the terms of :mod:`postconv.tasks.stand`, which its C MuJoCo twin in
  :mod:`postconv.cputrain` mirrors).
- :func:`make_eval_cfg`: the evaluation variant of any of them for one push scenario,
  without training-time randomization.
"""

from __future__ import annotations

import math

from isaaclab.managers import CurriculumTermCfg as CurrTerm
from isaaclab.managers import EventTermCfg as EventTerm
from isaaclab.managers import RewardTermCfg as RewTerm
from isaaclab.managers import SceneEntityCfg
from isaaclab.managers import TerminationTermCfg as DoneTerm
from isaaclab.utils import configclass
from isaaclab_tasks.core.velocity import mdp
from isaaclab_tasks.core.velocity.velocity_env_cfg import LocomotionVelocityRoughEnvCfg
from isaaclab_tasks.utils import resolve_presets

from postconv.tasks import crn, g1, stand
from postconv.tasks import mdp as recipe
from postconv.tasks.scenarios import PushScenario
from postconv.tasks.terrain import local_plane_terrain

NCONMAX = 64
"""Contacts per world: the most the robot can make with the ground (self-collisions are off).

Each of the G1's 31 collision capsules touches a plane at two points at most and each of its
2 spheres at one (MuJoCo's and Newton's plane colliders alike): 64 (``tests/sim/test_recipe.py`` recounts it from the built model), so a
world cannot overflow whatever pose the robot falls into. MuJoCo-Warp pools these across
worlds (``nconmax * num_envs`` in all)."""
NJMAX = 300
"""Constraint rows per world: 4 per contact (pyramidal cone, condim 3) = 256, plus one per
limited joint at its limit (29): 285, rounded up to mjlab's flat G1 value (g1/env_cfgs.py:192)."""
FEET = ".*_ankle_roll_link"
"""The bodies that carry the feet's colliders."""
FOOT_FRICTION_RANGE = (0.3, 1.2)
"""Foot friction drawn once per env at startup (mjlab velocity_env_cfg.py:241-250)."""
GROUND_FRICTION = FOOT_FRICTION_RANGE[0]
"""The ground's coefficient: MuJoCo-Warp takes the larger of a contact's two, so a ground at
the range's low end leaves each env's foot draw in force (mjlab gets the same by giving the
feet priority 1, g1_constants.py:220-227). The rest of the robot keeps its own 1.0."""
MAX_TILT = math.radians(70.0)
"""A pelvis tilted more than this ends the episode (mjlab ``fell_over``, velocity_env_cfg.py:382-385)."""
MIN_BASE_HEIGHT = stand.MIN_BASE_HEIGHT
"""A pelvis below this (m) ends the episode: a kneeling or sitting robot, upright enough to
escape the tilt limit. Not in mjlab (it ends on tilt only); here a kneeling optimum must not
pay (the pelvis stands at 0.76 m and a deep squat stays above 0.55 m)."""
TERMINATION_PENALTY = -200.0
"""Isaac Lab's G1 termination penalty (rough_env_cfg.py), kept though mjlab has none: a fall
must show in the reward samples the post-convergence stage ranks by, and the step that ends
in a fall is the one sample a fall leaves (the steps after a reset are burn-in)."""
PUSH_VELOCITY = {
    "x": (-0.5, 0.5),
    "y": (-0.5, 0.5),
    "z": (-0.4, 0.4),
    "roll": (-0.52, 0.52),
    "pitch": (-0.52, 0.52),
    "yaw": (-0.78, 0.78),
}
"""mjlab's push: a uniform root-velocity kick (m/s, rad/s) every 1 to 3 s (velocity_env_cfg.py:226-240)."""
PUSH_INTERVAL_S = (1.0, 3.0)
"""Seconds between pushes, per env (mjlab velocity_env_cfg.py:226-240)."""
COMMAND_RANGES = {"lin_vel_x": (-1.0, 1.0), "lin_vel_y": (-1.0, 1.0), "ang_vel_z": (-0.5, 0.5)}
"""Command ranges (m/s, rad/s) at the start of training (mjlab velocity_env_cfg.py:191-193)."""
STEPS_PER_ITERATION = 24
"""Policy steps per PPO iteration (mjlab rl_cfg.py:44; :mod:`postconv.tasks.agents`)."""
COMMAND_CURRICULUM = (
    (5000 * STEPS_PER_ITERATION, {"lin_vel_x": (-1.5, 2.0), "ang_vel_z": (-0.7, 0.7)}),
    (10000 * STEPS_PER_ITERATION, {"lin_vel_x": (-2.0, 3.0)}),
)
"""Wider commands from PPO iteration 5000 and 10000 on (mjlab velocity_env_cfg.py:401-411), counted
in policy steps at 24 a PPO iteration: a run with another ``agent.num_steps_per_env`` widens
them at other iterations."""

POSTURE_STD_STANDING = {".*": 0.05}
"""Posture kernel widths (rad) while the command is to stand (mjlab g1/env_cfgs.py:107)."""
POSTURE_STD_WALKING = {
    ".*hip_pitch.*": 0.3, ".*hip_roll.*": 0.15, ".*hip_yaw.*": 0.15, ".*knee.*": 0.35,
    ".*ankle_pitch.*": 0.25, ".*ankle_roll.*": 0.1, ".*waist_yaw.*": 0.2, ".*waist_roll.*": 0.08,
    ".*waist_pitch.*": 0.1, ".*shoulder_pitch.*": 0.15, ".*shoulder_roll.*": 0.15,
    ".*shoulder_yaw.*": 0.1, ".*elbow.*": 0.15, ".*wrist.*": 0.3,
}  # fmt: skip
"""Posture widths while walking (mjlab g1/env_cfgs.py:108-126)."""
POSTURE_STD_RUNNING = {
    ".*hip_pitch.*": 0.5, ".*hip_roll.*": 0.2, ".*hip_yaw.*": 0.2, ".*knee.*": 0.6,
    ".*ankle_pitch.*": 0.35, ".*ankle_roll.*": 0.15, ".*waist_yaw.*": 0.3, ".*waist_roll.*": 0.08,
    ".*waist_pitch.*": 0.2, ".*shoulder_pitch.*": 0.5, ".*shoulder_roll.*": 0.2,
    ".*shoulder_yaw.*": 0.15, ".*elbow.*": 0.35, ".*wrist.*": 0.3,
}  # fmt: skip
"""Posture widths while running (mjlab g1/env_cfgs.py:127-145)."""


def _feet() -> dict:
    """Params naming the feet as the articulation's bodies and as the contact sensor's."""
    return {
        "asset_cfg": SceneEntityCfg("robot", body_names=FEET),
        "sensor_cfg": SceneEntityCfg("contact_forces", body_names=FEET),
    }


_MOVING = {"command_name": "base_velocity", "command_threshold": 0.05}
"""Foot terms count only while the command asks to move (mjlab velocity_env_cfg.py:333-373)."""


@configclass
class G1Rewards:
    """mjlab's G1 velocity rewards (velocity_env_cfg.py:278-373, G1 overrides g1/env_cfgs.py:146-161).

    Left out: mjlab's ``self_collisions`` (-1.0), because self-collisions are off in these
    tasks (as in Isaac Lab's G1 and the C MuJoCo worlds of :mod:`postconv.sim2sim`), and
    ``air_time``, whose G1 weight is 0. Added: :data:`TERMINATION_PENALTY`.
    """

    track_linear_velocity = RewTerm(
        func=recipe.track_linear_velocity,
        weight=2.0,
        params={"command_name": "base_velocity", "std": math.sqrt(0.25)},
    )  # velocity_env_cfg.py:279-283
    track_angular_velocity = RewTerm(
        func=recipe.track_angular_velocity,
        weight=2.0,
        params={"command_name": "base_velocity", "std": math.sqrt(0.5)},
    )  # velocity_env_cfg.py:284-288
    upright = RewTerm(
        func=recipe.upright,
        weight=1.0,
        params={"std": math.sqrt(0.2), "asset_cfg": SceneEntityCfg("robot", body_names="torso_link")},
    )  # velocity_env_cfg.py:289-296, torso: g1/env_cfgs.py:147
    pose = RewTerm(
        func=recipe.variable_posture,
        weight=1.0,
        params={
            "std_standing": POSTURE_STD_STANDING,
            "std_walking": POSTURE_STD_WALKING,
            "std_running": POSTURE_STD_RUNNING,
            "walking_threshold": 0.05,
            "running_threshold": 1.5,
            "command_name": "base_velocity",
            "asset_cfg": SceneEntityCfg("robot", joint_names=".*"),
        },
    )  # velocity_env_cfg.py:297-309
    body_ang_vel = RewTerm(
        func=recipe.body_angular_velocity_penalty,
        weight=-0.05,
        params={"asset_cfg": SceneEntityCfg("robot", body_names="torso_link")},
    )  # g1/env_cfgs.py:148,153
    angular_momentum = RewTerm(func=recipe.angular_momentum_penalty, weight=-0.02)  # g1/env_cfgs.py:154
    dof_pos_limits = RewTerm(func=mdp.joint_pos_limits, weight=-1.0)  # velocity_env_cfg.py:320
    action_rate_l2 = RewTerm(func=mdp.action_rate_l2, weight=-0.1)  # velocity_env_cfg.py:321
    foot_clearance = RewTerm(
        func=recipe.feet_clearance,
        weight=-2.0,
        params={"target_height": 0.1, **_MOVING, "asset_cfg": SceneEntityCfg("robot", body_names=FEET)},
    )  # velocity_env_cfg.py:333-343
    foot_swing_height = RewTerm(
        func=recipe.feet_swing_height, weight=-0.25, params={"target_height": 0.1, **_MOVING, **_feet()}
    )  # velocity_env_cfg.py:344-354
    foot_slip = RewTerm(
        func=recipe.feet_slip, weight=-0.1, params={**_MOVING, **_feet()}
    )  # velocity_env_cfg.py:355-364
    soft_landing = RewTerm(
        func=recipe.soft_landing,
        weight=-1e-5,
        params={**_MOVING, "sensor_cfg": SceneEntityCfg("contact_forces", body_names=FEET)},
    )  # velocity_env_cfg.py:365-373
    termination_penalty = RewTerm(func=mdp.is_terminated, weight=TERMINATION_PENALTY)


@configclass
class G1Terminations:
    """The episode's end, a tilt beyond 70 degrees (mjlab) or a pelvis below 0.5 m (kneeling)."""

    time_out = DoneTerm(func=mdp.time_out, time_out=True)  # velocity_env_cfg.py:381
    fell_over = DoneTerm(func=recipe.tilted_beyond, params={"limit_angle": MAX_TILT})
    base_height = DoneTerm(func=mdp.root_height_below_minimum, params={"minimum_height": MIN_BASE_HEIGHT})


@configclass
class G1Curriculum:
    """mjlab's command curriculum; flat ground has no terrain curriculum."""

    command_ranges = CurrTerm(
        func=recipe.widen_commands, params={"command_name": "base_velocity", "stages": COMMAND_CURRICULUM}
    )


@configclass
class G1BaseEnvCfg(LocomotionVelocityRoughEnvCfg):
    """What every G1 task shares: the robot, the plane, the physics and the action scale.

    Isaac Lab's velocity events, retargeted to the G1's torso; each task sets its own terms.
    """

    def __post_init__(self):
        super().__post_init__()
        # physics: MuJoCo-Warp stays the default preset, with contact buffers for this asset
        newton = self.sim.physics.newton_mjwarp
        newton.solver_cfg.njmax = NJMAX
        newton.solver_cfg.nconmax = NCONMAX
        self.sim.physics.default = newton
        # scene
        self.scene.robot = g1.g1_articulation_cfg()
        self.scene.terrain = local_plane_terrain(self.scene.terrain)
        # the ground at the foot range's low end: a foot friction draw (training's, or an
        # evaluation's +dyn) is the contact's friction; the feet's own 1.0 holds otherwise
        self.scene.terrain.physics_material.static_friction = GROUND_FRICTION
        self.scene.terrain.physics_material.dynamic_friction = GROUND_FRICTION
        self.scene.height_scanner = None
        self.scene.sky_light = None
        self.observations.policy.height_scan = None
        self.curriculum.terrain_levels = None
        # actions: per-joint scale from each motor's effort limit and stiffness
        self.actions.joint_pos.scale = g1.action_scale()
        command = self.commands.base_velocity
        command.vel_yaw_success_threshold = 0.8
        command.marker_pos_offset = (0.0, 0.0, 0.75)
        # events
        self.events.add_base_mass.params["asset_cfg"].body_names = "torso_link"
        self.events.base_com = None
        self.events.base_external_force_torque.params["asset_cfg"].body_names = "torso_link"
        self.events.reset_robot_joints.params["position_range"] = (1.0, 1.0)


@configclass
class G1FlatEnvCfg(G1BaseEnvCfg):
    """``PostConv-Velocity-Flat-G1``: 29-DoF G1 velocity tracking on flat ground, mjlab's recipe without pushes.

    Kept from Isaac Lab instead of mjlab, and why:

    - the policy's observations (Isaac Lab's velocity set, the same terms as mjlab's actor in
      another order, base velocity noise +-0.1 instead of +-0.5) and a critic that sees them
      too (mjlab's critic adds foot heights, air times and contact forces): the C MuJoCo
      worlds of :mod:`postconv.sim2sim` replay checkpoints through this observation contract;
    - no encoder bias (mjlab +-0.015 rad): it needs an action term that subtracts it, and the
      evaluation's common random numbers have no stream for it;
    - commands as Isaac Lab draws them: mjlab's 20% forward-only envs have no Isaac Lab field;
    - push timers that run across resets (:func:`push_event`), so pushes reach short episodes;
    - MuJoCo-Warp's solver at Isaac Lab's 100 iterations and 50 line-search steps, not mjlab's
      10 and 20 (velocity_env_cfg.py:450-451): with those, the MuJoCo-Warp installed with Isaac
      Lab 3.0 prints "linesearch iterations limit reached" at nearly every step of a standing
      G1 (measured: 27 lines in 25 steps of 4 envs) and "solver iterations limit reached" about
      once an iteration of 64 envs in training, which at 4096 envs would bury the log.
    """

    rewards: G1Rewards = G1Rewards()
    terminations: G1Terminations = G1Terminations()
    curriculum: G1Curriculum = G1Curriculum()

    def __post_init__(self):
        super().__post_init__()
        self._set_commands()
        self._set_events()

    def _set_commands(self):
        """mjlab's command ranges and timing (velocity_env_cfg.py:182-194)."""
        command = self.commands.base_velocity
        command.resampling_time_range = (3.0, 8.0)
        command.rel_standing_envs = 0.1
        command.rel_heading_envs = 0.3
        command.heading_command = True
        command.heading_control_stiffness = 0.5
        for name, value in COMMAND_RANGES.items():
            setattr(command.ranges, name, value)
        command.ranges.heading = (-math.pi, math.pi)

    def _set_events(self):
        """mjlab's reset, friction and center-of-mass events; no mass draw, no pushes (flat)."""
        events = self.events
        events.physics_material = None
        events.foot_friction = EventTerm(
            func=recipe.randomize_foot_friction,
            mode="startup",
            params={
                "friction_range": FOOT_FRICTION_RANGE,
                "asset_cfg": SceneEntityCfg("robot", body_names=FEET),
            },
        )
        events.add_base_mass = None  # mjlab draws no masses
        events.base_com = EventTerm(
            func=mdp.randomize_rigid_body_com,
            mode="startup",
            params={
                "asset_cfg": SceneEntityCfg("robot", body_names="torso_link"),
                "com_range": {"x": (-0.025, 0.025), "y": (-0.025, 0.025), "z": (-0.03, 0.03)},
            },
        )  # velocity_env_cfg.py:259-271, torso: g1/env_cfgs.py:97
        events.base_external_force_torque = None
        events.reset_base.params["pose_range"] = {
            "x": (-0.5, 0.5), "y": (-0.5, 0.5), "z": (0.01, 0.05), "yaw": (-3.14, 3.14)
        }  # fmt: skip
        events.reset_base.params["velocity_range"] = {}  # velocity_env_cfg.py:204-216: from rest
        events.push_robot = None


def push_event(scenario: PushScenario) -> EventTerm | None:
    """The interval event that kicks x and y as ``scenario`` says, or None for no pushes."""
    if scenario.interval_s is None:
        return None
    v = scenario.velocity
    return _push_term(scenario.interval_s, {"x": (-v, v), "y": (-v, v)})


def _push_term(interval_s: tuple[float, float], velocity_range: dict) -> EventTerm:
    """Isaac Lab's velocity push every ``interval_s`` seconds, its clock running across resets:
    with Isaac Lab's default (resample on reset) a push interval longer than an episode never
    fires, and an untrained policy's episodes are short."""
    return EventTerm(
        func=mdp.push_by_setting_velocity,
        mode="interval",
        interval_range_s=interval_s,
        resample_interval_on_reset=False,
        params={"velocity_range": dict(velocity_range)},
    )


@configclass
class G1DisturbedEnvCfg(G1FlatEnvCfg):
    """``PostConv-Velocity-Disturbed-G1``: the flat task under mjlab's pushes (:data:`PUSH_VELOCITY`)."""

    def __post_init__(self):
        super().__post_init__()
        self.events.push_robot = _push_term(PUSH_INTERVAL_S, PUSH_VELOCITY)


@configclass
class G1StandRewards:
    """The stand task's rewards: weights from :data:`postconv.tasks.stand.REWARD_WEIGHTS`."""

    track_lin_vel_xy_exp = RewTerm(
        func=mdp.track_lin_vel_xy_exp,
        weight=0.0,
        params={"command_name": "base_velocity", "std": stand.TRACKING_STD},
    )
    track_ang_vel_z_exp = RewTerm(
        func=mdp.track_ang_vel_z_exp,
        weight=0.0,
        params={"command_name": "base_velocity", "std": stand.TRACKING_STD},
    )
    alive = RewTerm(func=mdp.is_alive, weight=0.0)
    termination_penalty = RewTerm(func=mdp.is_terminated, weight=0.0)
    flat_orientation_l2 = RewTerm(func=mdp.flat_orientation_l2, weight=0.0)
    base_height_l2 = RewTerm(
        func=mdp.base_height_l2, weight=0.0, params={"target_height": stand.BASE_HEIGHT_TARGET}
    )
    lin_vel_z_l2 = RewTerm(func=mdp.lin_vel_z_l2, weight=0.0)
    ang_vel_xy_l2 = RewTerm(func=mdp.ang_vel_xy_l2, weight=0.0)
    joint_deviation_l1 = RewTerm(func=mdp.joint_deviation_l1, weight=0.0)
    action_rate_l2 = RewTerm(func=mdp.action_rate_l2, weight=0.0)
    joint_vel_l2 = RewTerm(func=mdp.joint_vel_l2, weight=0.0)
    dof_pos_limits = RewTerm(func=mdp.joint_pos_limits, weight=0.0)

    def __post_init__(self):
        for name, weight in stand.REWARD_WEIGHTS.items():
            getattr(self, name).weight = weight


@configclass
class G1StandTerminations:
    """A fall (pelvis too low or too tilted) or the episode's end."""

    time_out = DoneTerm(func=mdp.time_out, time_out=True)
    base_height = DoneTerm(
        func=mdp.root_height_below_minimum, params={"minimum_height": stand.MIN_BASE_HEIGHT}
    )
    bad_orientation = DoneTerm(func=mdp.bad_orientation, params={"limit_angle": stand.MAX_TILT})


@configclass
class G1StandEnvCfg(G1BaseEnvCfg):
    """``PostConv-Stand-G1``: stand still under pushes and recover from them.

    Everything the policy meets is in :mod:`postconv.tasks.stand` and mirrored by the C
    MuJoCo twin that trains it on a CPU (``postconv train-mujoco``). No domain randomization
    beyond the reset pose and the observation noise, so the twin needs none either.
    """

    rewards: G1StandRewards = G1StandRewards()
    terminations: G1StandTerminations = G1StandTerminations()

    def __post_init__(self):
        super().__post_init__()
        self.episode_length_s = stand.EPISODE_S
        command = self.commands.base_velocity
        command.heading_command = False
        command.rel_standing_envs = 1.0
        command.rel_heading_envs = 0.0
        command.ranges.lin_vel_x = (0.0, 0.0)
        command.ranges.lin_vel_y = (0.0, 0.0)
        command.ranges.ang_vel_z = (0.0, 0.0)
        command.debug_vis = False
        events = self.events
        events.physics_material = None
        events.add_base_mass = None
        events.base_external_force_torque = None
        events.push_robot = push_event(stand.STAND_PUSH)


TRAINING_RANDOMIZATION = (
    "physics_material",
    "foot_friction",
    "add_base_mass",
    "base_com",
    "base_external_force_torque",
)
"""Events the evaluation variant turns off: draws that would blur a comparison of checkpoints."""

TASKS = {"flat": G1FlatEnvCfg, "disturbed": G1DisturbedEnvCfg, "stand": G1StandEnvCfg}


def active_reward_terms(rewards) -> tuple[str, ...]:
    """The terms of a rewards config (a configclass, or its ``to_dict``), named and ordered as
    Isaac Lab's reward manager builds them: terms set to None left out."""
    items = rewards.items() if isinstance(rewards, dict) else vars(rewards).items()
    return tuple(name for name, term in items if term is not None)


def reward_term_names(task: str) -> tuple[str, ...]:
    """The reward terms of ``task`` ("flat", "disturbed" or "stand"), without a simulation."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(map(repr, TASKS))}")
    return active_reward_terms(TASKS[task]().rewards)


def make_eval_cfg(
    task: str, scenario: PushScenario, num_envs: int = 64, seed: int = 0, presets: tuple[str, ...] = ()
) -> G1FlatEnvCfg:
    """The evaluation variant of ``task`` ("flat", "disturbed" or "stand") under one push scenario.

    Training-time randomization that would blur a comparison between checkpoints is off
    (:data:`TRAINING_RANDOMIZATION`: friction, mass and center-of-mass draws; observation
    noise); the feet keep their own friction (1.0), the ground's is lower, so contacts are at 1.0. What remains random
    (initial poses, commands, push times and kicks) is drawn from common random numbers
    (:mod:`postconv.tasks.crn`) seeded by ``seed``: every checkpoint evaluated with the same
    seed sees the same world, also when several share one env in groups. The push term is
    always present (off for ``NO_PUSH``) so one env build can switch scenarios
    (:func:`postconv.tasks.crn.set_push`). ``presets`` picks among the config's
    alternatives as Isaac Lab's ``presets=`` does (default: Newton MuJoCo-Warp).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(map(repr, TASKS))}")
    cfg = resolve_presets(TASKS[task](), selected=presets)
    cfg.scene.num_envs = num_envs
    cfg.seed = seed
    # every env at one origin: floating-point rounding is then the same for every group, so a
    # checkpoint's samples do not depend on which group it is in (envs never collide across worlds)
    cfg.scene.env_spacing = 0.0
    cfg.observations.policy.enable_corruption = False
    # commands from the ranges the task starts with, however long the evaluation runs
    if getattr(cfg.curriculum, "command_ranges", None) is not None:
        cfg.curriculum.command_ranges = None
    events = cfg.events
    for name in TRAINING_RANDOMIZATION:
        if hasattr(events, name):
            setattr(events, name, None)
    events.reset_base.func = crn.reset_root_state_crn
    joints = events.reset_robot_joints.params
    if tuple(joints["position_range"]) != (1.0, 1.0) or tuple(joints["velocity_range"]) != (0.0, 0.0):
        raise ValueError(
            "reset_robot_joints draws random joint states; give it a common-random-numbers term first"
        )
    step_dt = cfg.sim.dt * cfg.decimation
    events.push_robot = EventTerm(
        func=crn.PushCRN,
        mode="interval",
        interval_range_s=(step_dt, step_dt),  # called every step; the term keeps its own timers
        is_global_time=True,
        params={"interval_s": scenario.interval_s, "velocity": scenario.velocity},
    )
    command = cfg.commands.base_velocity
    cfg.commands.base_velocity = crn.VelocityCommandCRNCfg(
        **{name: getattr(command, name) for name in command.__dataclass_fields__ if name != "class_type"}
    )
    return cfg
