"""``PostConv-Stand-G1`` in plain C MuJoCo: the Isaac Lab task's twin, as an rsl_rl ``VecEnv``.

N worlds held as one array of MuJoCo states and stepped by ``mujoco.rollout`` on a thread
pool, one policy step (4 physics steps) per call. Everything the policy meets follows the
Isaac Lab task (:class:`postconv.tasks.velocity.G1StandEnvCfg`) step by step, in the order
Isaac Lab's ``ManagerBasedRLEnv.step`` runs it:

1. the action becomes joint targets ``q_default + scale * a`` held for 4 physics steps;
2. terminations on the reached state: pelvis below :data:`~postconv.tasks.stand.MIN_BASE_HEIGHT`,
   tilted over :data:`~postconv.tasks.stand.MAX_TILT`, or the episode's time is up;
3. rewards on the reached state (:func:`reward_terms`), weighted and times the step;
4. ended episodes reset: default joints at rest, random yaw, root velocity uniform in
   +-0.5 per axis;
5. pushes: each world's timer (1 to 3 s, running across resets) fires a velocity kick in
   x and y, uniform in +-1 m/s times the curriculum's scale;
6. the observation (:class:`postconv.sim2sim.contract.Contract`) with the task's uniform
   training noise.

The physics is the sim-to-sim robot (:mod:`postconv.sim2sim.robot`), not Newton: a policy
trained here meets Newton for the first time in the post-convergence stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np
import torch
from tensordict import TensorDict

from postconv.sim2sim.batch import RESET_VELOCITY, thread_pool
from postconv.sim2sim.contract import ACT_DIM, OBS_DIM, TRAINING_NOISE, Contract, obs_slices
from postconv.sim2sim.robot import DECIMATION, G1Model, build_g1
from postconv.sim2sim.worlds import POLICY_DT
from postconv.tasks import g1, stand
from postconv.tasks.features import feature_names
from postconv.tasks.scenarios import PushScenario

STREAM_RESET, STREAM_PUSH, STREAM_NOISE = 0, 1, 2
TWIN_STREAMS = 0x7717
"""Leads every random key of the twin, so no twin stream equals another module's (numpy pads
short keys with zeros: sim2sim's ``[seed, stream, slot]`` would otherwise meet ``[seed, 0, kind, 0]``)."""


@dataclass(frozen=True)
class PushCurriculum:
    """Push strength that follows the falls, as the robot learns (a training aid, not part of the task)."""

    start: float = 0.25
    """Scale of the task's pushes at the start."""
    step: float = 0.05
    """Change of the scale per update."""
    raise_below: float = 1.0
    """Falls per env-minute under which the pushes grow."""
    lower_above: float = 3.0
    """Falls per env-minute over which they shrink."""
    every_steps: int = 24
    """Policy steps between updates (one rsl_rl iteration of 24 steps)."""
    floor: float = 0.25
    """Smallest scale."""

    def __post_init__(self) -> None:
        if not 0 < self.floor <= self.start <= 1 or self.step <= 0 or self.every_steps < 1:
            raise ValueError(
                f"push curriculum needs 0 < floor <= start <= 1, step > 0, every_steps >= 1; got {self}"
            )
        if self.raise_below > self.lower_above:
            raise ValueError(
                f"raise_below ({self.raise_below}) must not exceed lower_above ({self.lower_above})"
            )

    def next_scale(self, scale: float, falls_per_minute: float) -> float:
        if falls_per_minute < self.raise_below:
            return min(1.0, scale + self.step)
        if falls_per_minute > self.lower_above:
            return max(self.floor, scale - self.step)
        return scale


@dataclass(frozen=True)
class StandEnvConfig:
    """The twin's options; the task itself is in :mod:`postconv.tasks.stand`."""

    num_envs: int = 256
    """Worlds stepped together."""
    seed: int = 0
    """Seed of resets, pushes and observation noise."""
    threads: int | None = None
    """``mujoco.rollout`` threads (default: every core)."""
    observation_noise: bool = True
    """The task's uniform training noise on the observation (Isaac Lab's ``enable_corruption``)."""
    curriculum: PushCurriculum | None = field(default_factory=PushCurriculum)
    """Push scale by falls; None: the task's full pushes from the start."""
    push: PushScenario = stand.STAND_PUSH
    """The pushes (the task's; another scenario to evaluate under, or ``NO_PUSH``)."""
    push_scale: float | None = None
    """Initial push scale (default: the curriculum's start, or 1 without one); a resumed
    training passes the scale it had reached."""
    stream: int = 0
    """Part of every random stream's key: a resumed training passes its start iteration so
    that it does not replay the draws of the start."""

    def __post_init__(self) -> None:
        if self.num_envs < 1 or self.seed < 0:
            raise ValueError(f"num_envs must be >= 1 and seed >= 0; got {self.num_envs}, {self.seed}")
        if self.push_scale is not None and not 0 <= self.push_scale <= 1:
            raise ValueError(f"push_scale must be between 0 and 1; got {self.push_scale}")


def reward_terms(
    contract: Contract,
    states: np.ndarray,
    actions: np.ndarray,
    prev_actions: np.ndarray,
    terminated: np.ndarray,
    soft_limits: np.ndarray,
) -> dict[str, np.ndarray]:
    """Unweighted values of the task's reward terms (Isaac Lab's ``mdp`` functions), (N,) each.

    Args:
        states: (N, nstate) the states the step reached.
        actions, prev_actions: (N, 29) this step's and the last step's actions.
        terminated: (N,) bool, episodes that end in a fall this step (not by time).
        soft_limits: (29, 2) joint limits the limits term counts from, policy order.
    """
    base = contract.base(states)
    q = contract.joint_pos(states)
    qd = contract.joint_vel(states)
    std2 = stand.TRACKING_STD**2
    # the command is zero: tracking it is holding still
    return {
        "track_lin_vel_xy_exp": np.exp(-np.sum(base.lin_vel_b[:, :2] ** 2, axis=1) / std2),
        "track_ang_vel_z_exp": np.exp(-(base.ang_vel_b[:, 2] ** 2) / std2),
        "alive": (~terminated).astype(np.float64),
        "termination_penalty": terminated.astype(np.float64),
        "flat_orientation_l2": np.sum(base.gravity_b[:, :2] ** 2, axis=1),
        "base_height_l2": (contract.qpos(states)[:, 2] - stand.BASE_HEIGHT_TARGET) ** 2,
        "lin_vel_z_l2": base.lin_vel_b[:, 2] ** 2,
        "ang_vel_xy_l2": np.sum(base.ang_vel_b[:, :2] ** 2, axis=1),
        "joint_deviation_l1": np.sum(np.abs(q - contract.default_isaac), axis=1),
        "action_rate_l2": np.sum((actions - prev_actions) ** 2, axis=1),
        "joint_vel_l2": np.sum(qd**2, axis=1),
        "dof_pos_limits": np.sum(
            np.clip(soft_limits[:, 0] - q, 0.0, None) + np.clip(q - soft_limits[:, 1], 0.0, None), axis=1
        ),
    }


FEATURE_NAMES = feature_names()
"""The state features the post-convergence stage records (:data:`postconv.tasks.features.FEATURES`), in its order."""


def state_features(contract: Contract, states: np.ndarray) -> np.ndarray:
    """(N, 13) the stage's state features of (N, nstate) states (:data:`FEATURE_NAMES`; command zero)."""
    base = contract.base(states)
    height = contract.qpos(states)[:, 2:3]
    return np.concatenate(
        [base.lin_vel_b, base.ang_vel_b, base.gravity_b, height, np.zeros((len(states), 3))], 1
    )


def falls(contract: Contract, states: np.ndarray) -> np.ndarray:
    """(N,) bool: the pelvis too low or too tilted (Isaac Lab's ``root_height_below_minimum``,
    ``bad_orientation``), or a state that is no longer finite."""
    finite = np.isfinite(states).all(axis=1)
    safe = (
        states
        if finite.all()
        else np.where(finite[:, None], states, contract.standing_state(states.shape[1]))
    )
    base = contract.base(safe)
    low = contract.qpos(safe)[:, 2] < stand.MIN_BASE_HEIGHT
    tilted = np.arccos(np.clip(-base.gravity_b[:, 2], -1.0, 1.0)) > stand.MAX_TILT
    return low | tilted | ~finite


def soft_joint_limits(robot: G1Model) -> np.ndarray:
    """(29, 2) the joints' soft limits in the policy's order: the range shrunk about its middle."""
    m = robot.model
    ranges = np.array([m.jnt_range[m.joint(name).id] for name in robot.isaac_joints])
    mid, half = ranges.mean(axis=1), (ranges[:, 1] - ranges[:, 0]) / 2 * g1.SOFT_LIMIT_FACTOR
    return np.stack([mid - half, mid + half], axis=1)


class StandEnv:
    """rsl_rl ``VecEnv`` of the stand task in C MuJoCo (see the module docstring).

    Observations: ``TensorDict(policy=(N, 99) float32)``; actions (N, 29); rewards (N,).
    """

    def __init__(self, config: StandEnvConfig = StandEnvConfig(), robot: G1Model | None = None):
        self.config = config
        self.cfg = {"task": "PostConv-Stand-G1 (C MuJoCo twin)", "num_envs": config.num_envs}
        self.num_envs = N = config.num_envs
        self.num_actions = ACT_DIM
        self.device = "cpu"
        self.dt = POLICY_DT
        self.max_episode_length = round(stand.EPISODE_S / POLICY_DT)
        self.robot = robot or build_g1()
        self.contract = Contract(self.robot)
        self.soft_limits = soft_joint_limits(self.robot)
        # one stream per env for its resets and one for its pushes, keyed by (seed, stream, env):
        # env j meets the same sequence of resets and pushes whatever happens in the others
        # (common random numbers across the candidates the study samples one by one)
        key = (TWIN_STREAMS, config.seed, config.stream)
        self._env_rngs = {
            kind: [np.random.default_rng([*key, kind, j]) for j in range(N)]
            for kind in (STREAM_RESET, STREAM_PUSH)
        }
        self.rng = np.random.default_rng([*key, STREAM_NOISE, N])  # observation noise: one stream for all
        self._standing = self.contract.standing_state(self.robot.nstate)
        self.pool = thread_pool(config.threads)
        threads = getattr(self.pool, "nthread", None) or 1
        self._datas = [mujoco.MjData(self.robot.model) for _ in range(threads)]
        self._out = np.zeros((N, DECIMATION, self.robot.nstate))
        self.states = np.zeros((N, self.robot.nstate))
        self.actions = np.zeros((N, ACT_DIM))
        self.prev_actions = np.zeros((N, ACT_DIM))
        self.ep_len = np.zeros(N, dtype=np.int64)
        start = config.curriculum.start if config.curriculum else 1.0
        self.push_scale = start if config.push_scale is None else config.push_scale
        self.push_timer = self._push_intervals(np.arange(N))
        self.noise = self._noise_widths() if config.observation_noise else None
        self._episode_sums = {name: np.zeros(N) for name in stand.REWARD_WEIGHTS}
        self._window = {"steps": 0, "falls": 0}
        self._reset(np.arange(N))
        self.obs = self._observe()

    # ------------------------------------------------------------------ rsl_rl VecEnv
    @property
    def episode_length_buf(self) -> torch.Tensor:
        return torch.from_numpy(self.ep_len)

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        self.ep_len[:] = value.cpu().numpy()

    def get_observations(self) -> TensorDict:
        return self.obs

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        """One policy step of every world: (observations, (N,) rewards, (N,) dones, extras)."""
        self.prev_actions = self.actions
        self.actions = actions.detach().cpu().numpy().astype(np.float64)
        controls = np.repeat(self.contract.targets(self.actions)[:, None, :], DECIMATION, axis=1)
        self.pool.rollout(
            self.robot.model, self._datas, self.states, controls, nstep=DECIMATION, state=self._out
        )
        self.states = self._out[:, -1].copy()
        self.ep_len += 1
        terminated = self.terminated = falls(self.contract, self.states)
        # as Isaac Lab: a fall on the last step is also a time-out (rsl_rl then bootstraps it)
        time_out = self.ep_len >= self.max_episode_length
        # a diverged world reads as a fall on the state it had; its numbers must not poison the batch
        finite = np.isfinite(self.states).all(axis=1)
        if not finite.all():
            self.states[~finite] = self._standing
        terms = reward_terms(
            self.contract, self.states, self.actions, self.prev_actions, terminated, self.soft_limits
        )
        self.step_terms = np.stack(
            [weight * terms[name] * self.dt for name, weight in stand.REWARD_WEIGHTS.items()], axis=1
        )
        self.step_features = state_features(self.contract, self.states)
        reward = self.step_terms.sum(axis=1)
        for i, sums in enumerate(self._episode_sums.values()):
            sums += self.step_terms[:, i]
        done = terminated | time_out
        extras = {
            "time_outs": torch.from_numpy(time_out),
            "log": self._episode_log(done, terminated, time_out),
        }
        self._reset(np.flatnonzero(done))
        self._push()
        self._curriculum(int(terminated.sum()))
        self.obs = self._observe()
        return self.obs, torch.from_numpy(reward.astype(np.float32)), torch.from_numpy(done), extras

    def close(self) -> None:
        self.pool.close()

    # ------------------------------------------------------------------ the task's steps
    def _reset(self, idx: np.ndarray) -> None:
        if len(idx) == 0:
            return
        draws = np.array([self._env_rngs[STREAM_RESET][j].uniform(-1.0, 1.0, 7) for j in idx])
        yaw, velocity = np.pi * draws[:, 0], RESET_VELOCITY * draws[:, 1:]
        self.states[idx] = self.contract.initial_states(yaw, velocity)
        self.actions[idx] = 0.0
        self.prev_actions[idx] = 0.0
        self.ep_len[idx] = 0
        for sums in self._episode_sums.values():
            sums[idx] = 0.0

    def _push_intervals(self, idx: np.ndarray) -> np.ndarray:
        interval = self.config.push.interval_s
        if interval is None:
            return np.full(len(idx), np.inf)
        return np.array([self._env_rngs[STREAM_PUSH][j].uniform(*interval) for j in idx])

    def _push(self) -> None:
        self.push_timer -= self.dt
        idx = np.flatnonzero(self.push_timer < 1e-6)  # Isaac Lab's interval events fire below 1e-6
        if len(idx) == 0:
            return
        v = self.config.push.velocity * self.push_scale
        kicks = np.array([self._env_rngs[STREAM_PUSH][j].uniform(-v, v, 2) for j in idx])
        # a kick adds the same velocity to the origin and the center of mass: the qvel's linear part
        qv = 1 + self.robot.model.nq
        self.states[idx, qv : qv + 2] += kicks
        self.push_timer[idx] = self._push_intervals(idx)

    def _curriculum(self, falls_now: int) -> None:
        curriculum = self.config.curriculum
        self._window["steps"] += 1
        self._window["falls"] += falls_now
        if curriculum is None or self._window["steps"] < curriculum.every_steps:
            return
        minutes = self._window["steps"] * self.num_envs * self.dt / 60.0
        self.push_scale = curriculum.next_scale(self.push_scale, self._window["falls"] / minutes)
        self._window = {"steps": 0, "falls": 0}

    def _observe(self) -> TensorDict:
        obs = self.contract.observe(self.states, np.zeros((self.num_envs, 3)), self.actions)
        if self.noise is not None:
            obs = obs + self.rng.uniform(-1.0, 1.0, obs.shape).astype(np.float32) * self.noise
        return TensorDict({"policy": torch.from_numpy(obs)}, batch_size=[self.num_envs])

    def _noise_widths(self) -> np.ndarray:
        widths = np.zeros(OBS_DIM, dtype=np.float32)
        slices = obs_slices()
        for name, width in TRAINING_NOISE.items():
            widths[slices[name]] = width
        return widths

    def _episode_log(self, done: np.ndarray, terminated: np.ndarray, time_out: np.ndarray) -> dict:
        """Isaac Lab's episode log: reward sums per second of episode, how episodes ended, the pushes."""
        log: dict[str, float] = {"Curriculum/push_scale": self.push_scale}
        if done.any():
            for name, sums in self._episode_sums.items():
                log[f"Episode_Reward/{name}"] = float(sums[done].mean() / stand.EPISODE_S)
            log["Episode_Termination/fall"] = int(terminated.sum())
            log["Episode_Termination/time_out"] = int(time_out.sum())
        return log


__all__ = [
    "FEATURE_NAMES",
    "PushCurriculum",
    "StandEnv",
    "StandEnvConfig",
    "falls",
    "reward_terms",
    "soft_joint_limits",
    "state_features",
]
