"""The policy's contract with the G1 tasks, computed from MuJoCo states.

What a checkpoint of ``PostConv-Velocity-Flat-G1`` / ``-Disturbed-G1`` reads and writes
(Isaac Lab 3.0's velocity task, checked term by term against a live Isaac Lab env in
``tests/sim/test_sim2sim_contract.py``):

observation (99,), in this order, no scaling, no clipping (evaluation: no noise)
    base_lin_vel (3)       the pelvis center of mass's velocity, in the pelvis frame
                           (Isaac Lab's ``root_lin_vel_b`` is ``root_com_lin_vel_b``)
    base_ang_vel (3)       the pelvis angular velocity, in the pelvis frame
    projected_gravity (3)  the unit gravity direction in the pelvis frame
    velocity_commands (3)  (vx, vy, wz) commanded, in the heading frame
    joint_pos (29)         q - q_default, joints in :data:`postconv.tasks.g1.JOINT_NAMES` order
    joint_vel (29)         qdot, same order
    actions (29)           the last action the policy returned (after clipping)
action (29,)
    clipped to the run's ``clip_actions`` when set; position target
    q* = q_default + scale * a per joint (:func:`postconv.tasks.g1.action_scale`), held
    for the 4 physics steps of a policy step.

States are MuJoCo ``mjSTATE_FULLPHYSICS`` vectors: [time, qpos (36), qvel (35)]. The
free joint's qpos holds the pelvis position and its (w, x, y, z) quaternion; its qvel
holds the linear velocity of the pelvis origin in the world frame, then the angular
velocity in the pelvis frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from postconv.sim2sim.robot import G1Model

OBS_TERMS: tuple[tuple[str, int], ...] = (
    ("base_lin_vel", 3),
    ("base_ang_vel", 3),
    ("projected_gravity", 3),
    ("velocity_commands", 3),
    ("joint_pos", 29),
    ("joint_vel", 29),
    ("actions", 29),
)
"""The policy observation's terms and sizes, in order (Isaac Lab's ``policy`` group)."""
OBS_DIM = sum(n for _, n in OBS_TERMS)
ACT_DIM = 29
TRAINING_NOISE = {
    "base_lin_vel": 0.1,
    "base_ang_vel": 0.2,
    "projected_gravity": 0.05,
    "joint_pos": 0.01,
    "joint_vel": 1.5,
}
"""Half-widths of the task's uniform training noise per term (``noise=1`` in a world)."""


def obs_slices() -> dict[str, slice]:
    """Term name -> its columns in the observation."""
    out, start = {}, 0
    for name, n in OBS_TERMS:
        out[name] = slice(start, start + n)
        start += n
    return out


def quat_rotate_inverse(quat: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """(N, 3): ``vec`` (N, 3) in the world frame expressed in the frames of ``quat`` (N, 4, wxyz)."""
    w, u = quat[:, :1], -quat[:, 1:]
    t = 2.0 * np.cross(u, vec)
    return vec + w * t + np.cross(u, t)


@dataclass(frozen=True)
class BaseState:
    """What the policy and the outcomes read of the pelvis, (N, 3) each."""

    position: np.ndarray
    """World position of the pelvis origin."""
    lin_vel_b: np.ndarray
    """Pelvis center-of-mass velocity in the pelvis frame."""
    ang_vel_b: np.ndarray
    gravity_b: np.ndarray
    lin_vel_w: np.ndarray
    """Pelvis center-of-mass velocity in the world frame."""
    ang_vel_w: np.ndarray


class Contract:
    """Observations from MuJoCo states and position targets from actions, for one G1 model."""

    def __init__(self, robot: G1Model):
        self.robot = robot
        m = robot.model
        self.nq, self.nv = m.nq, m.nv
        self.com_b = np.array(m.body("pelvis").ipos, dtype=np.float64)
        self.default_isaac = robot.params.default_pos[robot.to_isaac]
        self.scale_isaac = robot.params.action_scale[robot.to_isaac]
        self.slices = obs_slices()

    def qpos(self, states: np.ndarray) -> np.ndarray:
        return states[:, 1 : 1 + self.nq]

    def qvel(self, states: np.ndarray) -> np.ndarray:
        return states[:, 1 + self.nq : 1 + self.nq + self.nv]

    def base(self, states: np.ndarray) -> BaseState:
        qpos, qvel = self.qpos(states), self.qvel(states)
        quat = qpos[:, 3:7]
        ang_b = qvel[:, 3:6]
        # the center of mass moves with the origin plus omega x (its offset): in the body frame
        lin_b = quat_rotate_inverse(quat, qvel[:, 0:3]) + np.cross(ang_b, self.com_b)
        down = np.broadcast_to(np.array([0.0, 0.0, -1.0]), (len(quat), 3))
        gravity_b = quat_rotate_inverse(quat, down)
        conj = quat * np.array([1.0, -1.0, -1.0, -1.0])
        return BaseState(
            position=qpos[:, 0:3],
            lin_vel_b=lin_b,
            ang_vel_b=ang_b,
            gravity_b=gravity_b,
            lin_vel_w=quat_rotate_inverse(conj, lin_b),
            ang_vel_w=quat_rotate_inverse(conj, ang_b),
        )

    def joint_pos(self, states: np.ndarray) -> np.ndarray:
        """(N, 29) joint positions in the policy's order."""
        return self.qpos(states)[:, 7:][:, self.robot.to_isaac]

    def joint_vel(self, states: np.ndarray) -> np.ndarray:
        return self.qvel(states)[:, 6:][:, self.robot.to_isaac]

    def observe(self, states: np.ndarray, commands: np.ndarray, last_actions: np.ndarray) -> np.ndarray:
        """(N, 99) float32 observations of (N, nstate) states, (N, 3) commands, (N, 29) actions."""
        base = self.base(states)
        obs = np.empty((len(states), OBS_DIM), dtype=np.float64)
        s = self.slices
        obs[:, s["base_lin_vel"]] = base.lin_vel_b
        obs[:, s["base_ang_vel"]] = base.ang_vel_b
        obs[:, s["projected_gravity"]] = base.gravity_b
        obs[:, s["velocity_commands"]] = commands
        obs[:, s["joint_pos"]] = self.joint_pos(states) - self.default_isaac
        obs[:, s["joint_vel"]] = self.joint_vel(states)
        obs[:, s["actions"]] = last_actions
        return obs.astype(np.float32)

    def targets(self, actions: np.ndarray) -> np.ndarray:
        """(N, 29) position targets in MuJoCo's actuator order for (N, 29) policy actions."""
        return (self.default_isaac + self.scale_isaac * actions)[:, self.robot.to_mujoco]

    def initial_states(self, yaw: np.ndarray, root_velocity: np.ndarray) -> np.ndarray:
        """(N, nstate) standing states turned by (N,) ``yaw`` and moving at (N, 6) ``root_velocity``.

        ``root_velocity`` is the pelvis center of mass's linear then angular velocity in the
        world frame, as Isaac Lab's reset writes it; MuJoCo's free joint wants the velocity of
        the pelvis origin, ``v_com - w x r`` with ``r`` the COM offset in the world frame.
        """
        n = len(yaw)
        states = np.tile(self.standing_state(self.robot.nstate), (n, 1))
        qpos, qvel = self.qpos(states), self.qvel(states)
        qpos[:, 3] = np.cos(yaw / 2)
        qpos[:, 4:6] = 0.0
        qpos[:, 6] = np.sin(yaw / 2)
        quat = qpos[:, 3:7]
        ang_w = root_velocity[:, 3:]
        com_w = quat_rotate_inverse(quat * np.array([1.0, -1.0, -1.0, -1.0]), np.tile(self.com_b, (n, 1)))
        qvel[:, 0:3] = root_velocity[:, :3] - np.cross(ang_w, com_w)
        qvel[:, 3:6] = quat_rotate_inverse(quat, ang_w)
        return states

    def standing_state(self, nstate: int) -> np.ndarray:
        """(nstate,) the tasks' initial state: default pose, pelvis at the standing height, at rest."""
        import mujoco

        from postconv.tasks.g1 import STANDING_HEIGHT

        m = self.robot.model
        data = mujoco.MjData(m)
        data.qpos[2] = STANDING_HEIGHT
        data.qpos[3:7] = (1.0, 0.0, 0.0, 0.0)
        data.qpos[7:] = self.robot.params.default_pos
        mujoco.mj_forward(m, data)
        state = np.zeros(nstate)
        mujoco.mj_getState(m, data, state, mujoco.mjtState.mjSTATE_FULLPHYSICS)
        return state
