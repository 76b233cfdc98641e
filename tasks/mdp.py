"""Reward, termination, event and curriculum terms of mjlab's G1 velocity recipe, on Isaac Lab managers.

Isaac Lab has no counterpart for these (its nearest terms differ in kernel, frame or body),
so they are written here from the formulas of mjlab 1.6.0 (``mjlab/tasks/velocity/mdp/
rewards.py`` and ``mjlab/envs/mdp``; line numbers in each docstring). Tensor shapes:
``N`` envs, ``F`` feet, ``J`` joints, ``B`` bodies. Every reward returns ``(N,)``; the
reward manager multiplies it by its weight and by the policy step (0.02 s), as mjlab does.

Foot heights are taken from a site 4 cm ahead of and 3.7 cm below each ankle-roll link's
origin (``g1.xml`` lines 100 and 149), above the ground plane at z = 0: the tasks are flat,
so mjlab's ray cast under the foot reduces to the site's height.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import torch
from isaaclab.managers import ManagerTermBase, SceneEntityCfg
from isaaclab.utils.math import quat_apply, quat_apply_inverse

FOOT_SITE_OFFSET = (0.04, 0.0, -0.037)
"""The foot site in its ankle-roll link's frame (m): ``g1.xml`` lines 100 and 149."""
ROBOT = SceneEntityCfg("robot")
"""The whole robot: the default ``asset_cfg`` of the terms that read it."""
CONTACT_FORCE_N = 0.0
"""A foot is in contact when its net contact force exceeds this (N): any contact, as mjlab's
``found`` and as the contact sensor's air-time clocks (behind ``compute_first_contact``) count it."""


def _command_speed(env, command_name: str) -> torch.Tensor:
    """(N,) ``|| v_xy* || + | w_z* |``: how fast the command asks to move (mjlab's gate)."""
    command = env.command_manager.get_command(command_name)
    return torch.linalg.norm(command[:, :2], dim=1) + command[:, 2].abs()


def track_linear_velocity(
    env, std: float, command_name: str, asset_cfg: SceneEntityCfg = ROBOT
) -> torch.Tensor:
    """exp(-(|| v*_xy - v_xy ||^2 + v_z^2) / std^2), v the pelvis velocity in its own frame.

    The vertical velocity sits inside the kernel (mjlab rewards.py:37-44).
    """
    asset = env.scene[asset_cfg.name]
    v = asset.data.root_link_lin_vel_b.torch
    command = env.command_manager.get_command(command_name)
    error = torch.sum(torch.square(command[:, :2] - v[:, :2]), dim=1) + torch.square(v[:, 2])
    return torch.exp(-error / std**2)


def track_angular_velocity(
    env, std: float, command_name: str, asset_cfg: SceneEntityCfg = ROBOT
) -> torch.Tensor:
    """exp(-((w*_z - w_z)^2 + || w_xy ||^2) / std^2), w the pelvis angular velocity in its frame.

    Roll and pitch rates sit inside the kernel (mjlab rewards.py:57-64).
    """
    asset = env.scene[asset_cfg.name]
    w = asset.data.root_ang_vel_b.torch
    command = env.command_manager.get_command(command_name)
    error = torch.square(command[:, 2] - w[:, 2]) + torch.sum(torch.square(w[:, :2]), dim=1)
    return torch.exp(-error / std**2)


def _gravity_in_body(asset, body_id: int) -> torch.Tensor:
    """(N, 3) unit gravity in the frame of body ``body_id``."""
    quat = asset.data.body_link_quat_w.torch[:, body_id]
    down = torch.zeros_like(quat[:, :3])
    down[:, 2] = -1.0
    return quat_apply_inverse(quat, down)


def upright(env, std: float, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    """exp(-|| g_xy ||^2 / std^2), g gravity in the frame of the one body of ``asset_cfg``.

    1 upright, exp(-sin^2(tilt) / std^2) tilted (mjlab rewards.py:93-110, on the torso).
    """
    asset = env.scene[asset_cfg.name]
    g = _gravity_in_body(asset, asset_cfg.body_ids[0])
    return torch.exp(-torch.sum(torch.square(g[:, :2]), dim=1) / std**2)


class variable_posture(ManagerTermBase):
    """exp(-mean_j((q_j - q0_j)^2 / s_j^2)), with s the standing, walking or running widths.

    The regime follows the command speed ``|| v*_xy || + | w*_z |``: standing below
    ``walking_threshold``, running from ``running_threshold`` (mjlab rewards.py:401-466).
    Params: ``std_standing``, ``std_walking``, ``std_running`` (joint regex -> width, rad),
    ``walking_threshold``, ``running_threshold``, ``command_name``, ``asset_cfg``.
    """

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        asset = env.scene[cfg.params["asset_cfg"].name]
        self._joint_ids = cfg.params["asset_cfg"].joint_ids
        names = (
            asset.joint_names
            if isinstance(self._joint_ids, slice)
            else [asset.joint_names[i] for i in self._joint_ids]
        )
        self._std = {
            regime: torch.tensor(
                [_match_one(name, cfg.params[f"std_{regime}"]) for name in names], device=env.device
            )
            for regime in ("standing", "walking", "running")
        }

    def __call__(
        self,
        env,
        std_standing: dict[str, float],
        std_walking: dict[str, float],
        std_running: dict[str, float],
        walking_threshold: float,
        running_threshold: float,
        command_name: str,
        asset_cfg: SceneEntityCfg,
    ) -> torch.Tensor:
        asset = env.scene[asset_cfg.name]
        speed = _command_speed(env, command_name)[:, None]
        standing = speed < walking_threshold
        running = speed >= running_threshold
        std = torch.where(
            standing, self._std["standing"], torch.where(running, self._std["running"], self._std["walking"])
        )
        dq = (
            asset.data.joint_pos.torch[:, self._joint_ids]
            - asset.data.default_joint_pos.torch[:, self._joint_ids]
        )
        return torch.exp(-torch.mean(torch.square(dq) / torch.square(std), dim=1))


def _match_one(name: str, table: dict[str, float]) -> float:
    """The value of the one pattern in ``table`` that matches joint ``name`` in full."""
    hits = [value for pattern, value in table.items() if re.fullmatch(pattern, name)]
    if len(hits) != 1:
        raise ValueError(
            f"joint {name!r} matches {len(hits)} posture widths ({', '.join(table)}); give it exactly one"
        )
    return float(hits[0])


def body_angular_velocity_penalty(env, asset_cfg: SceneEntityCfg) -> torch.Tensor:
    """|| w_xy ||^2 of the one body of ``asset_cfg``, in the world frame (mjlab rewards.py:189-193)."""
    asset = env.scene[asset_cfg.name]
    w = asset.data.body_link_ang_vel_w.torch[:, asset_cfg.body_ids[0]]
    return torch.sum(torch.square(w[:, :2]), dim=1)


def angular_momentum(env, asset_cfg: SceneEntityCfg = ROBOT) -> torch.Tensor:
    """(N, 3) L, the robot's angular momentum about its center of mass (world frame).

    L = sum_b m_b (c_b - c) x (v_b - v_c) + R_b I_b R_b^T w_b, over bodies b with mass m_b,
    center of mass c_b moving at v_b, inertia I_b about it in the body frame and rotation
    R_b; c and v_c are the whole robot's. MuJoCo's ``subtreeangmom`` at the pelvis (the
    tree's root) is the same quantity; ``tests/sim/test_recipe.py`` compares the two.
    """
    data = env.scene[asset_cfg.name].data
    mass = data.body_mass.torch  # (N, B)
    pos, vel = data.body_com_pos_w.torch, data.body_com_lin_vel_w.torch  # (N, B, 3)
    total = mass.sum(dim=1, keepdim=True)[..., None]
    c = (mass[..., None] * pos).sum(dim=1, keepdim=True) / total
    v = (mass[..., None] * vel).sum(dim=1, keepdim=True) / total
    orbital = mass[..., None] * torch.cross(pos - c, vel - v, dim=-1)
    quat = data.body_com_quat_w.torch  # (N, B, 4)
    inertia = data.body_inertia.torch.reshape(*mass.shape, 3, 3)
    w_body = quat_apply_inverse(quat, data.body_com_ang_vel_w.torch)
    spin = quat_apply(quat, (inertia @ w_body[..., None])[..., 0])
    return (orbital + spin).sum(dim=1)


def angular_momentum_penalty(env, asset_cfg: SceneEntityCfg = ROBOT) -> torch.Tensor:
    """|| L ||^2 of :func:`angular_momentum` (mjlab rewards.py:201-206, from its pelvis
    ``subtreeangmom`` sensor)."""
    return torch.sum(torch.square(angular_momentum(env, asset_cfg)), dim=1)


@functools.cache
def _site_offset(device: torch.device) -> torch.Tensor:
    """:data:`FOOT_SITE_OFFSET` on ``device``, made once: a host-to-device copy per reward term and
    step would cost a GPU training three small transfers a step."""
    return torch.tensor(FOOT_SITE_OFFSET, device=device)


def _foot_sites(asset, body_ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, F, 3) positions and linear velocities (world) of the feet's sites."""
    pose = asset.data.body_link_pose_w.torch[:, body_ids]  # (N, F, 7)
    vel = asset.data.body_link_vel_w.torch[:, body_ids]  # (N, F, 6)
    offset = quat_apply(pose[..., 3:7], _site_offset(pose.device).expand_as(pose[..., :3]))
    return pose[..., :3] + offset, vel[..., :3] + torch.cross(vel[..., 3:6], offset, dim=-1)


def _in_contact(env, sensor_cfg: SceneEntityCfg) -> torch.Tensor:
    """(N, F) feet whose net contact force exceeds :data:`CONTACT_FORCE_N`."""
    sensor = env.scene.sensors[sensor_cfg.name]
    return sensor.data.net_forces_w.torch[:, sensor_cfg.body_ids].norm(dim=-1) > CONTACT_FORCE_N


def feet_clearance(
    env, target_height: float, command_threshold: float, command_name: str, asset_cfg: SceneEntityCfg
) -> torch.Tensor:
    """sum_f | z_f - target | * || v_f,xy ||, while the command asks to move (mjlab rewards.py:250-268)."""
    asset = env.scene[asset_cfg.name]
    pos, vel = _foot_sites(asset, asset_cfg.body_ids)
    cost = torch.sum((pos[..., 2] - target_height).abs() * torch.linalg.norm(vel[..., :2], dim=-1), dim=1)
    return cost * (_command_speed(env, command_name) > command_threshold)


class feet_swing_height(ManagerTermBase):
    """sum_f (h_f / target - 1)^2 at each foot's touchdown, h_f its highest point in the swing.

    Charged only while the command asks to move (mjlab rewards.py:294-323). Params:
    ``target_height``, ``command_threshold``, ``command_name``, ``sensor_cfg`` (the feet's
    contact bodies) and ``asset_cfg`` (the same feet in the articulation).
    """

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        asset_cfg, sensor_cfg = cfg.params["asset_cfg"], cfg.params["sensor_cfg"]
        bodies = [env.scene[asset_cfg.name].body_names[i] for i in asset_cfg.body_ids]
        sensed = [env.scene.sensors[sensor_cfg.name].body_names[i] for i in sensor_cfg.body_ids]
        if bodies != sensed:  # heights and contacts are paired foot by foot
            raise ValueError(
                f"feet_swing_height: the feet {bodies} and their contact sensors {sensed} differ in order"
            )
        self._peak = torch.zeros(env.num_envs, len(bodies), device=env.device)

    def reset(self, env_ids=None) -> None:
        self._peak[slice(None) if env_ids is None else env_ids] = 0.0

    def __call__(
        self,
        env,
        target_height: float,
        command_threshold: float,
        command_name: str,
        sensor_cfg: SceneEntityCfg,
        asset_cfg: SceneEntityCfg,
    ) -> torch.Tensor:
        pos, _ = _foot_sites(env.scene[asset_cfg.name], asset_cfg.body_ids)
        contact = _in_contact(env, sensor_cfg)
        self._peak = torch.where(contact, self._peak, torch.maximum(self._peak, pos[..., 2]))
        sensor = env.scene.sensors[sensor_cfg.name]
        first = sensor.compute_first_contact(env.step_dt).torch[:, sensor_cfg.body_ids] > 0
        cost = torch.sum(torch.square(self._peak / target_height - 1.0) * first, dim=1)
        self._peak = torch.where(first, torch.zeros_like(self._peak), self._peak)
        return cost * (_command_speed(env, command_name) > command_threshold)


def feet_slip(
    env, command_threshold: float, command_name: str, sensor_cfg: SceneEntityCfg, asset_cfg: SceneEntityCfg
) -> torch.Tensor:
    """sum_f || v_f,xy ||^2 over feet in contact, while the command asks to move (mjlab rewards.py:338-353)."""
    _, vel = _foot_sites(env.scene[asset_cfg.name], asset_cfg.body_ids)
    cost = torch.sum(torch.sum(torch.square(vel[..., :2]), dim=-1) * _in_contact(env, sensor_cfg), dim=1)
    return cost * (_command_speed(env, command_name) > command_threshold)


def soft_landing(
    env, command_threshold: float, command_name: str, sensor_cfg: SceneEntityCfg
) -> torch.Tensor:
    """sum_f || F_f || at each foot's touchdown, while the command asks to move (mjlab rewards.py:363-382)."""
    sensor = env.scene.sensors[sensor_cfg.name]
    force = sensor.data.net_forces_w.torch[:, sensor_cfg.body_ids].norm(dim=-1)
    first = sensor.compute_first_contact(env.step_dt).torch[:, sensor_cfg.body_ids] > 0
    return torch.sum(force * first, dim=1) * (_command_speed(env, command_name) > command_threshold)


def tilted_beyond(env, limit_angle: float, asset_cfg: SceneEntityCfg = ROBOT) -> torch.Tensor:
    """(N,) pelvis tilted more than ``limit_angle`` (rad) from upright.

    Isaac Lab's ``bad_orientation`` without its NaN: acos's argument is clamped to [-1, 1]
    first, as mjlab does since 1.5.1 (mjlab envs/mdp/terminations.py:24-34).
    """
    g = env.scene[asset_cfg.name].data.projected_gravity_b.torch
    return torch.acos(torch.clamp(-g[:, 2], -1.0, 1.0)) > limit_angle


class FootFriction:
    """Writes one friction coefficient per env onto every collider of the feet (Newton only).

    MuJoCo-Warp takes the larger coefficient of a contact's two colliders when their
    priorities are equal, so the ground's coefficient must not exceed the values written
    for them to be the ones in force.
    """

    def __init__(self, env, asset_cfg: SceneEntityCfg):
        asset = env.scene[asset_cfg.name]
        self._manager = env.sim.physics_manager
        if not hasattr(self._manager, "get_model"):
            raise ValueError(
                "foot friction draws write Newton's shape friction and rely on MuJoCo-Warp's friction rule; "
                "run the G1 velocity tasks on the Newton preset (the default), not PhysX"
            )
        self._mu = asset._root_view.get_attribute("shape_material_mu", self._manager.get_model())[:, 0]
        body_shapes = asset._root_view.body_shapes
        backend = asset.map_body_ids_to_backend(asset_cfg.body_ids)
        self._shapes = torch.tensor([s for b in backend for s in body_shapes[b]], dtype=torch.long)

    def read(self) -> torch.Tensor:
        """(N, shapes) the feet colliders' friction coefficients now."""
        import warp as wp

        mu = wp.to_torch(self._mu)
        return mu[:, self._shapes.to(mu.device)].clone()

    def write(self, env_ids: torch.Tensor, values: torch.Tensor) -> None:
        """Set the feet of ``env_ids`` to ``values``: (len(env_ids), 1) or (len(env_ids), shapes)."""
        import warp as wp
        from newton import ModelFlags

        mu = wp.to_torch(self._mu)
        shapes = self._shapes.to(mu.device)
        mu[env_ids[:, None], shapes] = values.to(mu.device).expand(-1, len(shapes))
        self._manager.add_model_change(ModelFlags.SHAPE_PROPERTIES)


class randomize_foot_friction(ManagerTermBase):
    """One friction coefficient per env, uniform in ``friction_range``, on every collider of the feet.

    mjlab's ``foot_friction`` event (``shared_random=True``: one draw per env for all foot
    geoms; velocity_env_cfg.py:241-250). The ground's coefficient must not exceed the
    range's low end for the draw to be the one in force (:class:`FootFriction`); the task
    sets it so and ``tests/sim/test_recipe.py`` reads the contacts' friction back.
    Params: ``friction_range``, ``asset_cfg`` (the feet's bodies).
    """

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        self._feet = FootFriction(env, cfg.params["asset_cfg"])

    def __call__(self, env, env_ids, friction_range: tuple[float, float], asset_cfg: SceneEntityCfg) -> None:
        ids = torch.arange(env.num_envs, device=env.device) if env_ids is None else env_ids
        lo, hi = friction_range
        self._feet.write(ids, lo + (hi - lo) * torch.rand(len(ids), 1, device=env.device))


def widen_commands(env, env_ids, command_name: str, stages: Sequence[tuple[int, dict]]) -> dict:
    """Command ranges by training progress: each ``(env_step, ranges)`` of ``stages`` whose step
    the env's step counter has reached sets those ranges, in order.

    ``stages``: ``(env_step, {"lin_vel_x": (lo, hi), ...})`` pairs in increasing step order; the
    counter counts policy steps, so PPO iteration i starts at ``i * num_steps_per_env``
    (mjlab ``commands_vel``, curriculums.py:91-116, keyed on ``common_step_counter``).
    Returns the ranges in force, which Isaac Lab logs under ``Curriculum/``.
    """
    ranges = env.command_manager.get_term(command_name).cfg.ranges
    for step, values in stages:
        if env.common_step_counter >= step:
            for name, value in values.items():
                setattr(ranges, name, tuple(value))
    return {"lin_vel_x_max": ranges.lin_vel_x[1], "ang_vel_z_max": ranges.ang_vel_z[1]}


__all__ = [
    "FOOT_SITE_OFFSET",
    "angular_momentum",
    "angular_momentum_penalty",
    "body_angular_velocity_penalty",
    "feet_clearance",
    "feet_slip",
    "feet_swing_height",
    "randomize_foot_friction",
    "soft_landing",
    "tilted_beyond",
    "track_angular_velocity",
    "track_linear_velocity",
    "upright",
    "variable_posture",
    "widen_commands",
]
