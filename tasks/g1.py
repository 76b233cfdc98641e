"""The 29-DoF Unitree G1 as an Isaac Lab articulation, with gains from its motors.

Motor facts (rotor inertias, gear ratios, effort and velocity limits) are Unitree's, as
collected in mjlab's G1 constants. Each joint's armature is the motor's reflected inertia
through its two-stage planetary gearbox; the PD gains put every joint at a 10 Hz natural
frequency with damping ratio 2 (mjlab's choice for this robot), and the policy's action
scale per joint is a quarter of its effort limit over its stiffness. Waist pitch/roll and
the ankles are driven by two 5020 motors through a linkage, taken at a nominal 1:1 ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

PHYSICS_DT = 0.005
"""Physics step (s): the tasks' ``sim.dt``."""
DECIMATION = 4
"""Physics steps per policy step: the tasks' ``decimation`` (policy at 50 Hz)."""

G1_USD = Path(__file__).resolve().parent / "assets" / "g1" / "g1_29dof.usd"
"""The flattened 29-DoF G1 (see ``postconv.tasks.assets.build_g1``)."""

NATURAL_FREQUENCY_HZ = 10.0
DAMPING_RATIO = 2.0


@dataclass(frozen=True)
class Motor:
    """A G1 joint motor: rotor/stage inertias (kg m^2), two-stage gear ratios, limits."""

    inertias: tuple[float, float, float]
    gears: tuple[float, float]
    effort_limit: float  # N m
    velocity_limit: float  # rad/s

    @property
    def armature(self) -> float:
        """Reflected inertia at the joint: I0 (g1 g2)^2 + I1 g2^2 + I2."""
        g1, g2 = self.gears
        i0, i1, i2 = self.inertias
        return i0 * (g1 * g2) ** 2 + i1 * g2**2 + i2


MOTOR_5020 = Motor((0.139e-4, 0.017e-4, 0.169e-4), (1 + 46 / 18, 1 + 56 / 16), 25.0, 37.0)
MOTOR_7520_14 = Motor((0.489e-4, 0.098e-4, 0.533e-4), (4.5, 1 + 48 / 22), 88.0, 32.0)
MOTOR_7520_22 = Motor((0.489e-4, 0.109e-4, 0.738e-4), (4.5, 5.0), 139.0, 20.0)
MOTOR_4010 = Motor((0.068e-4, 0.0, 0.0), (5.0, 5.0), 5.0, 22.0)


@dataclass(frozen=True)
class JointGroup:
    """Joints driven alike: ``motors`` motors of one kind in parallel (linkage joints use 2)."""

    joints: tuple[str, ...]
    motor: Motor
    motors: int = 1

    @property
    def armature(self) -> float:
        return self.motors * self.motor.armature

    @property
    def stiffness(self) -> float:
        return self.armature * (2 * math.pi * NATURAL_FREQUENCY_HZ) ** 2

    @property
    def damping(self) -> float:
        return 2 * DAMPING_RATIO * self.armature * 2 * math.pi * NATURAL_FREQUENCY_HZ

    @property
    def effort_limit(self) -> float:
        return self.motors * self.motor.effort_limit

    @property
    def action_scale(self) -> float:
        return 0.25 * self.effort_limit / self.stiffness


JOINT_GROUPS: dict[str, JointGroup] = {
    "hip_pitch_yaw_waist_yaw": JointGroup(
        (".*_hip_pitch_joint", ".*_hip_yaw_joint", "waist_yaw_joint"), MOTOR_7520_14
    ),
    "hip_roll_knee": JointGroup((".*_hip_roll_joint", ".*_knee_joint"), MOTOR_7520_22),
    "ankle": JointGroup((".*_ankle_pitch_joint", ".*_ankle_roll_joint"), MOTOR_5020, motors=2),
    "waist_roll_pitch": JointGroup(("waist_roll_joint", "waist_pitch_joint"), MOTOR_5020, motors=2),
    "arm": JointGroup(
        (
            ".*_shoulder_pitch_joint",
            ".*_shoulder_roll_joint",
            ".*_shoulder_yaw_joint",
            ".*_elbow_joint",
            ".*_wrist_roll_joint",
        ),
        MOTOR_5020,
    ),
    "wrist_pitch_yaw": JointGroup((".*_wrist_pitch_joint", ".*_wrist_yaw_joint"), MOTOR_4010),
}
"""Every one of the 29 joints in exactly one group."""

_LEG = ("hip_pitch", "hip_roll", "hip_yaw", "knee", "ankle_pitch", "ankle_roll")
_ARM = ("shoulder_pitch", "shoulder_roll", "shoulder_yaw", "elbow", "wrist_roll", "wrist_pitch", "wrist_yaw")
JOINT_NAMES: tuple[str, ...] = (
    *(f"{side}_{joint}_joint" for side in ("left", "right") for joint in _LEG),
    "waist_yaw_joint",
    "waist_roll_joint",
    "waist_pitch_joint",
    *(f"{side}_{joint}_joint" for side in ("left", "right") for joint in _ARM),
)
"""The 29 joint names of the G1 in Isaac Lab's articulation order, which is the policy's
(checked against a live env in tests/sim/test_sim2sim_contract.py); not MuJoCo's qpos order."""

STANDING_POSE: dict[str, float] = {
    ".*_hip_pitch_joint": -0.312,
    ".*_knee_joint": 0.669,
    ".*_ankle_pitch_joint": -0.363,
    ".*_elbow_joint": 0.6,
    "left_shoulder_roll_joint": 0.2,
    "left_shoulder_pitch_joint": 0.2,
    "right_shoulder_roll_joint": -0.2,
    "right_shoulder_pitch_joint": 0.2,
}
"""Knees-bent default pose (rad); joints not named start at 0."""
STANDING_HEIGHT = 0.76
"""Pelvis height (m) in the standing pose."""
SOFT_LIMIT_FACTOR = 0.9
"""The articulation's soft joint limits: this share of each joint's range about its middle."""


def action_scale() -> dict[str, float]:
    """Per-joint scale of the policy's position action (regex -> rad per unit action)."""
    return {name: group.action_scale for group in JOINT_GROUPS.values() for name in group.joints}


def g1_articulation_cfg(prim_path: str = "{ENV_REGEX_NS}/Robot"):
    """The G1 ``ArticulationCfg``: local USD, standing pose, one implicit PD group per motor kind."""
    import isaaclab.sim as sim_utils
    from isaaclab.actuators import ImplicitActuatorCfg
    from isaaclab.assets.articulation import ArticulationCfg
    from isaaclab_newton.sim.schemas import NewtonArticulationCfg
    from isaaclab_physx.sim.schemas import PhysxArticulationCfg, PhysxRigidBodyCfg

    if not G1_USD.is_file():
        raise FileNotFoundError(
            f"the G1 asset {G1_USD} is missing; reinstall postconv or rebuild it with "
            "`python -m postconv.tasks.assets.build_g1`"
        )
    return ArticulationCfg(
        prim_path=prim_path,
        spawn=sim_utils.UsdFileCfg(
            usd_path=str(G1_USD),
            activate_contact_sensors=True,
            rigid_props=PhysxRigidBodyCfg(
                disable_gravity=False,
                retain_accelerations=False,
                linear_damping=0.0,
                angular_damping=0.0,
                max_linear_velocity=1000.0,
                max_angular_velocity=1000.0,
                max_depenetration_velocity=1.0,
            ),
            articulation_props=[
                PhysxArticulationCfg(
                    enabled_self_collisions=False,
                    solver_position_iteration_count=8,
                    solver_velocity_iteration_count=4,
                ),
                NewtonArticulationCfg(self_collision_enabled=False),
            ],
        ),
        init_state=ArticulationCfg.InitialStateCfg(
            pos=(0.0, 0.0, STANDING_HEIGHT), joint_pos=dict(STANDING_POSE), joint_vel={".*": 0.0}
        ),
        soft_joint_pos_limit_factor=SOFT_LIMIT_FACTOR,
        actuators={
            name: ImplicitActuatorCfg(
                joint_names_expr=list(group.joints),
                stiffness=group.stiffness,
                damping=group.damping,
                armature=group.armature,
                joint_effort_limit=group.effort_limit,
                joint_velocity_limit=group.motor.velocity_limit,
            )
            for name, group in JOINT_GROUPS.items()
        },
    )
