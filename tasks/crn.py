"""Common random numbers for evaluation: every checkpoint sees the same world.

The evaluation env holds G groups of m envs, each group driven by its own checkpoint.
Isaac Lab's terms draw from one global generator in the order resets happen, so groups
whose robots fall at different times would see different initial states, commands and
pushes. Here every random draw comes from a counter-based generator instead:

    u = hash(seed, stream, slot, n, i)   in [0, 1)

where ``slot = env_id mod m`` is the env's position within its group, ``n`` counts the
draws that env made from that stream and ``i`` is the component. The n-th reset of slot j
therefore gets the same initial state in every group, the n-th command the same velocity,
the n-th push the same timing and kick, whatever the policy did in between, and whatever
the group size G (grouped evaluation equals one-by-one evaluation: to the bit on the CPU; on a
GPU the inputs are the same but the physics is not bitwise reproducible by default, README).

Streams: the root reset, the velocity command (with its resampling time), pushes and the
dynamics draws of a ``+dyn`` scenario (:mod:`postconv.tasks.dynamics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import MISSING

import torch
from isaaclab.envs.mdp.commands.commands_cfg import UniformVelocityCommandCfg
from isaaclab.envs.mdp.commands.velocity_command import UniformVelocityCommand
from isaaclab.managers import ManagerTermBase
from isaaclab.utils import configclass
from isaaclab.utils import math as math_utils

STREAM_RESET, STREAM_COMMAND, STREAM_PUSH, STREAM_DYNAMICS = 0, 1, 2, 3
_NUM_STREAMS = 4
_MASK32 = 0xFFFFFFFF
_AXES = ("x", "y", "z", "roll", "pitch", "yaw")


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finalizer (three xor-shift-multiply rounds) on int64 holding uint32.

    The multiplier is below 2^31, so products stay below 2^63: no signed overflow.
    """
    x = ((x >> 16) ^ x) * 0x45D9F3B & _MASK32
    x = ((x >> 16) ^ x) * 0x45D9F3B & _MASK32
    return (x >> 16) ^ x


class CommonRandom:
    """Per-slot uniform draws, identical across env groups (see the module docstring).

    Attach one to an env with :func:`attach` before its first reset; terms find it there.
    """

    def __init__(self, num_envs: int, slots: int, seed: int, device: str | torch.device):
        if slots < 1 or num_envs % slots:
            raise ValueError(f"num_envs ({num_envs}) must be a positive multiple of slots ({slots})")
        self.slots = slots
        self.device = torch.device(device)
        self.slot = torch.arange(num_envs, device=self.device) % slots
        self.counts = torch.zeros(num_envs, _NUM_STREAMS, dtype=torch.int64, device=self.device)
        self.generation = 0
        """Counts restarts, so terms with state of their own (push timers) know to start over."""
        self.restart(seed)

    def restart(self, seed: int) -> None:
        """Start every stream over from ``seed`` (e.g. before a new evaluation)."""
        self.seed = int(seed)
        self.counts.zero_()
        self.generation += 1

    def uniform(self, env_ids: torch.Tensor | slice | Sequence[int], stream: int, dims: int) -> torch.Tensor:
        """(len(env_ids), dims) uniforms in [0, 1): each env's next draw from ``stream``."""
        ids = _as_index(env_ids, self.slot.numel(), self.device)
        count = self.counts[ids, stream]
        self.counts[ids, stream] += 1
        h = _mix32(torch.full_like(count, (self.seed * 0x9E3779B1 + stream * 0x85EBCA77) & _MASK32))
        h = _mix32(h ^ self.slot[ids])
        h = _mix32(h ^ (count & _MASK32))
        comps = torch.arange(dims, device=self.device, dtype=torch.int64)
        bits = _mix32((h[:, None] + comps * 0x27D4EB2F) & _MASK32)
        return (bits >> 8).to(torch.float32) / float(1 << 24)

    def uniform_ranges(
        self, env_ids, stream: int, ranges: dict[str, tuple[float, float]], axes: Sequence[str] = _AXES
    ) -> torch.Tensor:
        """(len(env_ids), len(axes)) values uniform in ``ranges[axis]`` (0 where an axis has none)."""
        bounds = torch.tensor([ranges.get(a, (0.0, 0.0)) for a in axes], device=self.device)
        u = self.uniform(env_ids, stream, len(axes))
        return bounds[:, 0] + u * (bounds[:, 1] - bounds[:, 0])


def _as_index(env_ids, num_envs: int, device: torch.device) -> torch.Tensor:
    if env_ids is None or isinstance(env_ids, slice):
        return torch.arange(num_envs, device=device)[env_ids if isinstance(env_ids, slice) else slice(None)]
    return torch.as_tensor(env_ids, device=device).long().reshape(-1)


def attach(env, slots: int, seed: int) -> CommonRandom:
    """Give ``env`` (num_envs = groups x ``slots``) its common random numbers."""
    env.postconv_crn = CommonRandom(env.num_envs, slots, seed, env.device)
    return env.postconv_crn


def crn_of(env) -> CommonRandom:
    """The env's common random numbers; one per env, every env its own slot, until attached."""
    crn = getattr(env, "postconv_crn", None)
    if crn is None:
        crn = attach(env, env.num_envs, int(env.cfg.seed or 0))
    return crn


def reset_root_state_crn(
    env,
    env_ids: torch.Tensor | slice,
    pose_range: dict[str, tuple[float, float]],
    velocity_range: dict[str, tuple[float, float]],
    asset_name: str = "robot",
) -> None:
    """Isaac Lab's ``reset_root_state_uniform``, drawn from the slot's reset stream."""
    asset = env.scene[asset_name]
    crn = crn_of(env)
    ids = _as_index(env_ids, env.num_envs, crn.device)
    pose = crn.uniform_ranges(ids, STREAM_RESET, pose_range)
    vel = crn.uniform_ranges(ids, STREAM_RESET, velocity_range)
    default_pose = asset.data.default_root_pose.torch[ids]
    positions = default_pose[:, :3] + env.scene.env_origins[ids] + pose[:, :3]
    delta = math_utils.quat_from_euler_xyz(pose[:, 3], pose[:, 4], pose[:, 5])
    orientations = math_utils.quat_mul(default_pose[:, 3:7], delta)
    velocities = asset.data.default_root_vel.torch[ids] + vel
    asset.write_root_pose_to_sim_index(root_pose=torch.cat([positions, orientations], dim=-1), env_ids=ids)
    asset.write_root_velocity_to_sim_index(root_velocity=velocities, env_ids=ids)


class PushCRN(ManagerTermBase):
    """Velocity kicks at random intervals per env, timing and size from the slot's push stream.

    Registered as a global-time interval event firing every env step (interval = step_dt),
    because Isaac Lab's own interval timer draws from the global generator. The timer here
    runs across resets (Isaac Lab's ``resample_interval_on_reset=False``), so the push
    schedule of a slot is the same in every group. ``interval_s=None`` turns pushes off,
    so one env build serves every scenario (:func:`set_push`).
    """

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        self._generation = -1
        self._time_left = torch.zeros(env.num_envs, device=env.device)

    def __call__(
        self,
        env,
        env_ids,
        interval_s: tuple[float, float] | None,
        velocity: float,
        asset_name: str = "robot",
    ) -> None:
        if interval_s is None:
            return
        crn = crn_of(env)
        lo, hi = interval_s
        if self._generation != crn.generation:  # a new evaluation: first push times
            self._generation = crn.generation
            self._time_left[:] = lo + (hi - lo) * crn.uniform(None, STREAM_PUSH, 1)[:, 0]
        self._time_left -= env.step_dt
        due = torch.nonzero(self._time_left < 1e-6).flatten()
        if due.numel() == 0:
            return
        u = crn.uniform(due, STREAM_PUSH, 3)
        self._time_left[due] = lo + (hi - lo) * u[:, 0]
        asset = env.scene[asset_name]
        vel = asset.data.root_vel_w.torch[due].clone()
        vel[:, :2] += velocity * (2.0 * u[:, 1:3] - 1.0)
        asset.write_root_velocity_to_sim_index(root_velocity=vel, env_ids=due)


def set_push(env, interval_s: tuple[float, float] | None, velocity: float, term: str = "push_robot") -> None:
    """Switch the env's push scenario in place (takes effect from the next restart)."""
    cfg = env.event_manager.get_term_cfg(term)
    cfg.params["interval_s"] = None if interval_s is None else tuple(interval_s)
    cfg.params["velocity"] = float(velocity)
    env.event_manager.set_term_cfg(term, cfg)


class VelocityCommandCRN(UniformVelocityCommand):
    """Isaac Lab's uniform velocity command, drawn from the slot's command stream."""

    cfg: VelocityCommandCRNCfg

    def _resample(self, env_ids: Sequence[int] | slice) -> None:
        crn = crn_of(self._env)
        ids = _as_index(env_ids, self.num_envs, crn.device)
        if ids.numel() == 0:
            return
        c = self.cfg
        u = crn.uniform(ids, STREAM_COMMAND, 7)
        lo, hi = c.resampling_time_range
        self.time_left[ids] = lo + (hi - lo) * u[:, 0]
        for col, (a, b) in enumerate((c.ranges.lin_vel_x, c.ranges.lin_vel_y, c.ranges.ang_vel_z)):
            self.vel_command_b[ids, col] = a + (b - a) * u[:, 1 + col]
        if c.heading_command:
            a, b = c.ranges.heading
            self.heading_target[ids] = a + (b - a) * u[:, 4]
            self.is_heading_env[ids] = u[:, 5] <= c.rel_heading_envs
        self.is_standing_env[ids] = u[:, 6] <= c.rel_standing_envs
        self.command_counter[ids] += 1


@configclass
class VelocityCommandCRNCfg(UniformVelocityCommandCfg):
    """:class:`UniformVelocityCommandCfg` drawing from common random numbers."""

    class_type: type = VelocityCommandCRN
    asset_name: str = MISSING
