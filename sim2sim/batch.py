"""Checkpoints x episodes of one world, stepped in C on all cores under common random numbers.

Env ``b`` of a batch is checkpoint ``b // E`` in episode slot ``b % E``. Everything random
about an episode (initial yaw and velocity, commands, pushes, biases, observation noise)
is drawn from generators keyed by ``(seed, stream, slot)`` (noise: ``(seed, step)``), so
every checkpoint meets the same episodes, whatever other checkpoints share the batch, and
every world starts from the same states. Episodes start together and run for the same
time; an env that falls (anything but the feet touches the ground) stops there.

Physics runs in ``mujoco.rollout`` on a persistent thread pool, one policy step
(``DECIMATION`` physics steps) per call, only for envs still standing. Each env's physics
depends on nothing but its own state and controls, and every call starts the solver from
a zero warm start, so results do not depend on the thread count or the batch's makeup.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mujoco
import numpy as np
import torch
from mujoco import rollout

from postconv import interrupt
from postconv.sim2sim.config import EpisodeSpec
from postconv.sim2sim.contract import OBS_DIM, TRAINING_NOISE, Contract, obs_slices
from postconv.sim2sim.robot import DECIMATION, G1Model
from postconv.sim2sim.worlds import POLICY_DT, Command, World

STREAM_RESET, STREAM_COMMAND, STREAM_PUSH, STREAM_BIAS, STREAM_NOISE = range(5)
RESET_VELOCITY = 0.5
"""Initial root velocity, uniform in +-this per axis (m/s, rad/s): Isaac Lab's reset range, which
the stand task keeps (the velocity tasks start from rest, so their worlds start harder)."""
TRACKING_STD = 0.5
"""The tracking score's kernel width, exp(-error^2 / std^2): the stand task's, and the velocity
tasks' linear one (their yaw-rate kernel is sqrt(0.5) wide and counts roll and pitch rates)."""


@dataclass(frozen=True)
class EpisodeDraws:
    """Everything random about E episode slots of a world, (E, ...) arrays."""

    yaw: np.ndarray
    root_velocity: np.ndarray
    """(E, 6) initial center-of-mass linear and angular velocity, world frame."""
    commands: np.ndarray
    """(E, T, 3) command (vx, vy, wz) at every policy step."""
    push: np.ndarray
    """(E, T, 2) velocity kick (m/s, world x y) after each step, zero where none."""
    gyro_bias: np.ndarray
    """(E, 3)"""
    tilt: np.ndarray
    """(E, 3, 3) rotation of the IMU readings."""
    encoder_bias: np.ndarray
    """(E, 29)"""


def _rng(seed: int, stream: int, slot: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, slot])


def draw_episodes(world: World, spec: EpisodeSpec) -> EpisodeDraws:
    """The common random numbers of ``spec.episodes`` slots of ``world`` (see the module docstring)."""
    E, T = spec.episodes, spec.steps
    yaw, vel = np.zeros(E), np.zeros((E, 6))
    commands, push = np.zeros((E, T, 3)), np.zeros((E, T, 2))
    gyro, tilt, encoder = np.zeros((E, 3)), np.tile(np.eye(3), (E, 1, 1)), np.zeros((E, 29))
    for e in range(E):
        r = _rng(spec.seed, STREAM_RESET, e)
        yaw[e] = r.uniform(-math.pi, math.pi)
        vel[e] = r.uniform(-RESET_VELOCITY, RESET_VELOCITY, 6)
        commands[e] = _commands(world.command, _rng(spec.seed, STREAM_COMMAND, e), T)
        if world.push is not None:
            push[e] = _pushes(world.push.interval_s, world.push.velocity, _rng(spec.seed, STREAM_PUSH, e), T)
        r = _rng(spec.seed, STREAM_BIAS, e)
        direction = r.normal(size=3)
        gyro[e] = world.gyro_bias * direction / np.linalg.norm(direction)
        axis_angle = r.uniform(0.0, 2 * math.pi)
        tilt[e] = _rotation(
            np.array([math.cos(axis_angle), math.sin(axis_angle), 0.0]), math.radians(world.tilt_deg)
        )
        encoder[e] = r.uniform(-1.0, 1.0, 29) * world.encoder_bias
    return EpisodeDraws(yaw, vel, commands, push, gyro, tilt, encoder)


def _commands(command: Command, r: np.random.Generator, steps: int) -> np.ndarray:
    fixed = command.fixed()
    if fixed is not None:
        return np.tile(np.array(fixed), (steps, 1))
    period = round(Command.MIXED_PERIOD_S / POLICY_DT)
    segments = -(-steps // period)
    lo, hi = np.array(Command.MIXED_RANGES).T
    draws = lo + (hi - lo) * r.random((segments, 3))
    return np.repeat(draws, period, axis=0)[:steps]


def _pushes(interval: tuple[float, float], velocity: float, r: np.random.Generator, steps: int) -> np.ndarray:
    out = np.zeros((steps, 2))
    t = r.uniform(*interval)
    while True:
        step = round(t / POLICY_DT) - 1  # the kick lands after the step that ends at time t
        if step >= steps:
            return out
        out[max(step, 0)] = velocity * r.uniform(-1.0, 1.0, 2)
        t += r.uniform(*interval)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def observation_noise(seed: int, step: int, episodes: int, scale: float) -> np.ndarray:
    """(E, 99) uniform noise of ``step``, ``scale`` times the task's training noise per term."""
    half = np.zeros(OBS_DIM)
    for name, sl in obs_slices().items():
        half[sl] = TRAINING_NOISE.get(name, 0.0) * scale
    return (2.0 * _rng(seed, STREAM_NOISE, step).random((episodes, OBS_DIM)) - 1.0) * half


@dataclass(frozen=True)
class EpisodeOutcomes:
    """Per env of a batch, (B,) each (checkpoint ``b // E``, slot ``b % E``)."""

    survived: np.ndarray
    time_to_fall: np.ndarray
    """Seconds until the fall; the episode length where none."""
    lin_tracking_error: np.ndarray
    """Mean over the episode of |commanded - actual| planar velocity in the heading frame (m/s);
    after a fall each step errs by the whole command (no progress)."""
    ang_tracking_error: np.ndarray
    """Mean |commanded - actual| yaw rate (rad/s), counted alike."""
    tracking_return: np.ndarray
    """Sum over the episode of the tasks' tracking rewards, (exp(-e_xy^2/0.25) + exp(-e_wz^2/0.25)) * dt; 0 after a fall."""
    unstable: np.ndarray
    """The simulation diverged or warned (MuJoCo reset the state): the episode ends there and
    counts as a failure in the outcomes above (not survived), but not as a fall in falls per
    minute; every such episode is reported per world."""

    METRICS = ("survived", "time_to_fall", "lin_tracking_error", "ang_tracking_error", "tracking_return")
    LOWER_IS_BETTER = ("lin_tracking_error", "ang_tracking_error")


class WorldBatch:
    """Runs checkpoints x episodes in one world (see the module docstring)."""

    def __init__(self, robot: G1Model, world: World, spec: EpisodeSpec, pool: rollout.Rollout):
        self.robot, self.world, self.spec, self.pool = robot, world, spec, pool
        self.contract = Contract(robot)
        self.draws = draw_episodes(world, spec)
        self.nstate = robot.nstate
        self.slices = obs_slices()

    def run(
        self,
        policy: Callable[[torch.Tensor], torch.Tensor],
        checkpoints: int,
        clip: float | None = None,
        on_steps: Callable[[int], None] | None = None,
        on_states: Callable[[int, np.ndarray], None] | None = None,
    ) -> EpisodeOutcomes:
        """Outcomes of ``checkpoints`` policies (``policy`` maps (C*E, 99) -> (C*E, 29)) on every episode.

        ``on_states(t, states)``: called with the (C*E, nstate) full physics states at the start
        (t = 0) and after every policy step t (a fallen env keeps the state where it fell), e.g.
        to render them."""
        E, T, world, c = self.spec.episodes, self.spec.steps, self.world, self.contract
        B = checkpoints * E
        slot = np.arange(B) % E
        m = self.robot.model
        states = np.tile(c.initial_states(self.draws.yaw, self.draws.root_velocity), (checkpoints, 1))
        default_targets = c.targets(np.zeros((1, 29)))[0]
        latency = world.latency_physics_steps
        history = [np.tile(default_targets, (B, 1)) for _ in range(latency // DECIMATION + 2)]
        lag = substep_lags(latency)
        delayed = []
        last_actions = np.zeros((B, 29))
        alive = np.ones(B, dtype=bool)
        fall_step = np.full(B, T)
        fallen = np.zeros(B, dtype=bool)
        unstable = np.zeros(B, dtype=bool)
        lin_err, ang_err, ret = (np.zeros(B) for _ in range(3))
        encoder_bias = self.draws.encoder_bias[slot][:, self.robot.to_mujoco]
        out_state = np.zeros((B, DECIMATION, self.nstate))
        out_sensor = np.zeros((B, DECIMATION, m.nsensordata))
        models = [m] * B
        datas = [mujoco.MjData(m) for _ in range(max(1, self.pool_threads))]
        if on_states is not None:
            on_states(0, states)
        for t in range(T):
            commands = self.draws.commands[slot, t]
            obs = c.observe(states, commands, last_actions).astype(np.float64)
            obs = self._corrupt(obs, slot, t)
            delayed.append(obs)
            seen = (delayed.pop(0) if len(delayed) > world.obs_delay_steps else delayed[0]).copy()
            # a slow estimator delays what is sensed, not the command or the policy's own last action
            for name in ("velocity_commands", "actions"):
                seen[:, self.slices[name]] = obs[:, self.slices[name]]
            actions = policy(torch.from_numpy(seen.astype(np.float32))).numpy().astype(np.float64)
            if clip is not None:
                actions = np.clip(actions, -clip, clip)
            last_actions = actions
            # the motor's PD loop reads the same biased encoder: the joint settles at target - bias
            history.insert(0, c.targets(actions) - encoder_bias)
            history.pop()
            idx = np.flatnonzero(alive)
            if len(idx) == 0:
                break
            controls = np.stack([history[lag[k]][idx] for k in range(DECIMATION)], axis=1)
            self.pool.rollout(
                [models[i] for i in idx],
                datas,
                states[idx],
                controls,
                nstep=DECIMATION,
                state=out_state[: len(idx)],
                sensordata=out_sensor[: len(idx)],
            )
            new = out_state[: len(idx), -1]
            diverged = ~np.isfinite(new).all(axis=1) | (np.abs(new[:, 0] - (t + 1) * POLICY_DT) > 1e-6)
            fell = (out_sensor[: len(idx)][:, :, self.robot.body_sensors] > 0).any(axis=(1, 2)) & ~diverged
            states[idx] = np.where(diverged[:, None], states[idx], new)
            # tracking while standing, measured on the state the step reached
            base = c.base(states[idx])
            yaw = _yaw(c.qpos(states[idx])[:, 3:7])
            cos, sin = np.cos(yaw), np.sin(yaw)
            vx = cos * base.lin_vel_w[:, 0] + sin * base.lin_vel_w[:, 1]
            vy = -sin * base.lin_vel_w[:, 0] + cos * base.lin_vel_w[:, 1]
            e_xy = np.hypot(commands[idx, 0] - vx, commands[idx, 1] - vy)
            e_wz = np.abs(commands[idx, 2] - base.ang_vel_w[:, 2])
            ok = ~(fell | diverged)
            lin_err[idx] += np.where(ok, e_xy, 0.0)
            ang_err[idx] += np.where(ok, e_wz, 0.0)
            ret[idx] += np.where(
                ok,
                (np.exp(-(e_xy**2) / TRACKING_STD**2) + np.exp(-(e_wz**2) / TRACKING_STD**2)) * POLICY_DT,
                0.0,
            )
            ended = idx[fell | diverged]
            fall_step[idx[fell | diverged]] = t + 1
            fallen[idx[fell]] = True
            unstable[idx[diverged]] = True
            alive[ended] = False
            kick = self.draws.push[slot, t]
            live = alive & (np.abs(kick).sum(axis=1) > 0)
            states[live, 1 + c.nq : 1 + c.nq + 2] += kick[live]
            if on_steps is not None:
                on_steps(len(idx))
            if on_states is not None:
                on_states(t + 1, states)
            interrupt.check()
        # after a fall the robot makes no progress: every later step errs by the whole command
        for t_end in np.unique(fall_step[fall_step < T]):
            rest = fall_step == t_end
            tail = self.draws.commands[slot[rest], t_end:]
            lin_err[rest] += np.hypot(tail[..., 0], tail[..., 1]).sum(axis=1)
            ang_err[rest] += np.abs(tail[..., 2]).sum(axis=1)
        return EpisodeOutcomes(
            survived=~fallen & ~unstable,
            time_to_fall=fall_step * POLICY_DT,
            lin_tracking_error=lin_err / T,
            ang_tracking_error=ang_err / T,
            tracking_return=ret,
            unstable=unstable,
        )

    @property
    def pool_threads(self) -> int:
        return getattr(self.pool, "nthread", None) or _cores()

    def _corrupt(self, obs: np.ndarray, slot: np.ndarray, step: int) -> np.ndarray:
        """Observation noise and sensor biases of the world (IMU tilt, gyro, encoders)."""
        world, d, s = self.world, self.draws, obs_slices()
        if world.tilt_deg:
            for name in ("base_lin_vel", "base_ang_vel", "projected_gravity"):
                obs[:, s[name]] = np.einsum("bij,bj->bi", d.tilt[slot], obs[:, s[name]])
        if world.gyro_bias:
            obs[:, s["base_ang_vel"]] += d.gyro_bias[slot]
        if world.encoder_bias:
            obs[:, s["joint_pos"]] += d.encoder_bias[slot]
        if world.noise:
            obs += observation_noise(self.spec.seed, step, self.spec.episodes, world.noise)[slot]
        return obs


def substep_lags(latency: int) -> list[int]:
    """Per physics step k of a policy step, how many policy steps old its target is.

    With a latency of L physics steps, the target computed at policy step t drives physics
    steps 4t + L to 4t + L + 3: step k of policy step t uses the target of t - ceil((L - k) / 4).
    """
    return [max(0, -(-(latency - k) // DECIMATION)) for k in range(DECIMATION)]


def _yaw(quat: np.ndarray) -> np.ndarray:
    w, x, y, z = quat.T
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def thread_pool(threads: int | None = None) -> rollout.Rollout:
    """A persistent ``mujoco.rollout`` pool of ``threads`` (default: every core)."""
    return rollout.Rollout(nthread=threads or _cores())


def _cores() -> int:
    """Cores this process may use (a container's share, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


__all__: Sequence[str] = ("EpisodeOutcomes", "EpisodeSpec", "WorldBatch", "draw_episodes", "thread_pool")
