"""G1 velocity tracking on flat ground, calm and under pushes, as Isaac Lab 3.0 env configs.

Isaac Lab's velocity MDP (commands, observations, rewards, terminations) with its G1
reward terms, adapted to the 29-DoF robot: every term names joints and bodies that exist
(waist, elbow, wrists). Newton's MuJoCo-Warp solver is the default physics preset (PhysX
stays available when Isaac Sim is installed); the ground is a local plane, so nothing is
fetched from Isaac Lab's asset server.

- :class:`G1FlatEnvCfg` (``PostConv-Velocity-Flat-G1``): the flat task.
- :class:`G1DisturbedEnvCfg` (``PostConv-Velocity-Disturbed-G1``): the same under velocity
  pushes every 1 to 3 s of simulated time, counted across resets, so they fire even in the
  ~1 s episodes of an untrained policy.
- :class:`G1StandEnvCfg` (``PostConv-Stand-G1``): stand still under pushes and recover
  (zero command; the terms of :mod:`postconv.tasks.stand`, which its C MuJoCo twin in
  :mod:`postconv.cputrain` mirrors).
- :func:`make_eval_cfg`: the evaluation variant of any of them for one push scenario,
  without training-time randomization.
"""

from __future__ import annotations

from isaaclab.managers import EventTermCfg as EventTerm
from isaaclab.managers import RewardTermCfg as RewTerm
from isaaclab.managers import SceneEntityCfg
from isaaclab.managers import TerminationTermCfg as DoneTerm
from isaaclab.utils import configclass
from isaaclab_tasks.core.velocity import mdp
from isaaclab_tasks.core.velocity.velocity_env_cfg import LocomotionVelocityRoughEnvCfg, RewardsCfg
from isaaclab_tasks.utils import resolve_presets

from postconv.tasks import crn, g1, stand
from postconv.tasks.scenarios import TRAINING_PUSH, PushScenario
from postconv.tasks.terrain import local_plane_terrain

# Contact-buffer sizes per world for this asset's foot capsules (Isaac Lab's 10 / 95
# overflow with it; these were seen to hold with margin).
NCONMAX = 48
NJMAX = 250


def _joints(*names: str) -> dict:
    """Reward-term params selecting the robot's joints matching ``names``."""
    return {"asset_cfg": SceneEntityCfg("robot", joint_names=list(names))}


@configclass
class G1Rewards(RewardsCfg):
    """Isaac Lab's G1 velocity rewards on the 29-DoF joint names."""

    termination_penalty = RewTerm(func=mdp.is_terminated, weight=-200.0)
    track_lin_vel_xy_exp = RewTerm(
        func=mdp.track_lin_vel_xy_yaw_frame_exp,
        weight=1.0,
        params={"command_name": "base_velocity", "std": 0.5},
    )
    track_ang_vel_z_exp = RewTerm(
        func=mdp.track_ang_vel_z_world_exp, weight=1.0, params={"command_name": "base_velocity", "std": 0.5}
    )
    feet_air_time = RewTerm(
        func=mdp.feet_air_time_positive_biped,
        weight=0.75,
        params={
            "command_name": "base_velocity",
            "sensor_cfg": SceneEntityCfg("contact_forces", body_names=".*_ankle_roll_link"),
            "threshold": 0.4,
        },
    )
    feet_slide = RewTerm(
        func=mdp.feet_slide,
        weight=-0.1,
        params={
            "sensor_cfg": SceneEntityCfg("contact_forces", body_names=".*_ankle_roll_link"),
            "asset_cfg": SceneEntityCfg("robot", body_names=".*_ankle_roll_link"),
        },
    )
    dof_pos_limits = RewTerm(
        func=mdp.joint_pos_limits, weight=-1.0, params=_joints(".*_ankle_pitch_joint", ".*_ankle_roll_joint")
    )
    # joints that locomotion does not need stay near their default
    joint_deviation_hip = RewTerm(
        func=mdp.joint_deviation_l1, weight=-0.1, params=_joints(".*_hip_yaw_joint", ".*_hip_roll_joint")
    )
    joint_deviation_arms = RewTerm(
        func=mdp.joint_deviation_l1,
        weight=-0.1,
        params=_joints(
            ".*_shoulder_pitch_joint",
            ".*_shoulder_roll_joint",
            ".*_shoulder_yaw_joint",
            ".*_elbow_joint",
            ".*_wrist_roll_joint",
        ),
    )
    joint_deviation_wrists = RewTerm(
        func=mdp.joint_deviation_l1,
        weight=-0.05,
        params=_joints(".*_wrist_pitch_joint", ".*_wrist_yaw_joint"),
    )
    joint_deviation_waist = RewTerm(
        func=mdp.joint_deviation_l1, weight=-0.1, params=_joints("waist_.*_joint")
    )


@configclass
class G1FlatEnvCfg(LocomotionVelocityRoughEnvCfg):
    """``PostConv-Velocity-Flat-G1``: 29-DoF G1 velocity tracking on flat ground."""

    rewards: G1Rewards = G1Rewards()

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
        self.scene.height_scanner = None
        self.scene.sky_light = None
        self.observations.policy.height_scan = None
        self.curriculum.terrain_levels = None
        # actions: per-joint scale from each motor's effort limit and stiffness
        self.actions.joint_pos.scale = g1.action_scale()
        # commands
        command = self.commands.base_velocity
        command.vel_yaw_success_threshold = 0.8
        command.marker_pos_offset = (0.0, 0.0, 0.75)
        command.ranges.lin_vel_x = (0.0, 1.0)
        command.ranges.lin_vel_y = (-0.5, 0.5)
        command.ranges.ang_vel_z = (-1.0, 1.0)
        self._tune_rewards_and_terminations()
        # events
        self.events.add_base_mass.params["asset_cfg"].body_names = "torso_link"
        self.events.base_com = None
        self.events.base_external_force_torque.params["asset_cfg"].body_names = "torso_link"
        self.events.reset_robot_joints.params["position_range"] = (1.0, 1.0)

    def _tune_rewards_and_terminations(self):
        """Isaac Lab's G1 flat weights; the torso touching anything ends an episode."""
        rewards = self.rewards
        rewards.lin_vel_z_l2.weight = -0.2
        rewards.undesired_contacts = None
        rewards.flat_orientation_l2.weight = -1.0
        rewards.action_rate_l2.weight = -0.005
        rewards.dof_acc_l2.weight = -1.0e-7
        rewards.dof_acc_l2.params["asset_cfg"] = SceneEntityCfg(
            "robot", joint_names=[".*_hip_.*", ".*_knee_joint"]
        )
        rewards.dof_torques_l2.weight = -2.0e-6
        rewards.dof_torques_l2.params["asset_cfg"] = SceneEntityCfg(
            "robot", joint_names=[".*_hip_.*", ".*_knee_joint"]
        )
        # terminations: the torso touching anything
        self.terminations.base_contact.params["sensor_cfg"].body_names = "torso_link"


def push_event(scenario: PushScenario) -> EventTerm | None:
    """The interval event that applies ``scenario``, or None for no pushes.

    The interval clock runs across resets: with Isaac Lab's default (resample on reset)
    a push interval longer than an episode never fires.
    """
    if scenario.interval_s is None:
        return None
    v = scenario.velocity
    return EventTerm(
        func=mdp.push_by_setting_velocity,
        mode="interval",
        interval_range_s=scenario.interval_s,
        resample_interval_on_reset=False,
        params={"velocity_range": {"x": (-v, v), "y": (-v, v)}},
    )


@configclass
class G1DisturbedEnvCfg(G1FlatEnvCfg):
    """``PostConv-Velocity-Disturbed-G1``: the flat task trained under frequent pushes."""

    def __post_init__(self):
        super().__post_init__()
        self.events.push_robot = push_event(TRAINING_PUSH)


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
class G1StandEnvCfg(G1FlatEnvCfg):
    """``PostConv-Stand-G1``: stand still under pushes and recover from them.

    Everything the policy meets is in :mod:`postconv.tasks.stand` and mirrored by the C
    MuJoCo twin that trains it on a CPU (``postconv train-mujoco``). No domain randomization
    beyond the reset pose and the observation noise, so the twin needs none either.
    """

    rewards: G1StandRewards = G1StandRewards()
    terminations: G1StandTerminations = G1StandTerminations()

    def _tune_rewards_and_terminations(self):
        """Nothing to tune: the stand task's terms are its own."""

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
    (friction, mass and center-of-mass draws, observation noise). What remains random
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
    events = cfg.events
    events.physics_material = None
    events.add_base_mass = None
    events.base_com = None
    events.base_external_force_torque = None
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
