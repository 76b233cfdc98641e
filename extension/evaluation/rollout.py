"""Rollouts: checkpoints evaluated in groups in one vectorized Isaac Lab env.

The env holds ``groups x envs_per_checkpoint`` envs. Env ``i`` belongs to group
``i // m`` (driven by that group's checkpoint) and slot ``i % m``; every random draw comes
from common random numbers per slot (:mod:`postconv.tasks.crn`), so each checkpoint sees
the same initial states, commands and pushes. Actions are the policies' means, computed
for each group in one batched forward pass.

- :class:`EvalJob`: the self-contained, picklable unit of work (a group of checkpoints x
  one scenario x a seed range) whose result is its sample folders on disk.
- :class:`Evaluator`: one simulation in this process, reused for every job it runs
  (Isaac Lab keeps one simulation per process).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from postconv import __version__, interrupt
from postconv.evaluation.delay import ActionDelay
from postconv.evaluation.policy import CheckpointError, DeterministicActor, load_actor
from postconv.storage.sample_store import (
    SampleWriter,
    config_hash,
    discard_partials,
    file_sha256,
    is_complete,
    sample_dir,
)
from postconv.tasks import TASK_KINDS
from postconv.tasks.features import FEATURES, feature_names
from postconv.tasks.scenarios import NO_PUSH, PushScenario


def read_feature(env, name: str) -> torch.Tensor:
    """(num_envs, len(FEATURES[name])) values of a feature."""
    data = env.scene["robot"].data
    if name == "base_lin_vel":
        return data.root_lin_vel_b.torch
    if name == "base_ang_vel":
        return data.root_ang_vel_b.torch
    if name == "projected_gravity":
        return data.projected_gravity_b.torch
    if name == "base_height":
        return data.root_pos_w.torch[:, 2:3]
    if name == "command":
        return env.command_manager.get_command("base_velocity")[:, :3]
    raise ValueError(f"unknown feature {name!r}; choose from {', '.join(FEATURES)}")


@dataclass(frozen=True)
class RolloutSpec:
    """How every job of an evaluation rolls out (the part of the config that defines the samples)."""

    task: str
    """Isaac Lab task id (``PostConv-Velocity-Flat-G1`` or ``PostConv-Velocity-Disturbed-G1``)."""
    envs_per_checkpoint: int = 16
    """Envs (slots) each checkpoint drives; the bootstrap resamples them."""
    num_envs: int = 16
    """Envs of the evaluation env: ``num_envs / envs_per_checkpoint`` groups. Part of the
    samples' identity: the physics rounds differently for another env size."""
    device: str = "cpu"
    """Simulation and policy device."""
    presets: tuple[str, ...] = ()
    """Isaac Lab config presets (default: Newton MuJoCo-Warp)."""
    burn_in_steps: int = 50
    """Steps after the reset that are not recorded (1 s at 50 Hz), so samples come from
    the walking gait rather than the start-up transient."""
    steps: int = 250
    """Recorded steps per env and seed (5 s at 50 Hz)."""
    features: tuple[str, ...] = tuple(FEATURES)
    """State features recorded with every sample (names from :data:`FEATURES`)."""

    def __post_init__(self) -> None:
        if self.task not in TASK_KINDS:
            raise ValueError(f"unknown task {self.task!r}; postconv evaluates {', '.join(TASK_KINDS)}")
        if self.envs_per_checkpoint < 1 or self.steps < 1 or self.burn_in_steps < 0:
            raise ValueError(
                "envs_per_checkpoint and steps must be >= 1 and burn_in_steps >= 0; got "
                f"{self.envs_per_checkpoint}, {self.steps}, {self.burn_in_steps}"
            )
        if self.num_envs < self.envs_per_checkpoint or self.num_envs % self.envs_per_checkpoint:
            raise ValueError(
                f"num_envs ({self.num_envs}) must be a multiple of envs_per_checkpoint ({self.envs_per_checkpoint}): "
                "the env is made of whole groups"
            )
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ValueError(f"unknown features {unknown}; choose from {', '.join(FEATURES)}")

    @property
    def feature_names(self) -> tuple[str, ...]:
        return feature_names(self.features)

    @property
    def groups(self) -> int:
        return self.num_envs // self.envs_per_checkpoint

    def identity(self) -> dict:
        """What of the spec decides the samples' values: the device's type, not its index (cuda:0
        and cuda:1 run the same kernels; a GPU's contact ordering is not bitwise reproducible in
        any case, so an index would only split sample sets that agree in distribution)."""
        return {**asdict(self), "device": torch.device(self.device).type}


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint file as a job sees it."""

    path: str
    name: str
    iteration: int
    sha256: str


@dataclass(frozen=True)
class EvalJob:
    """One unit of evaluation work: checkpoints x one scenario x seeds, results on disk.

    Self-contained and picklable: a worker needs nothing else (no shared state) to run
    it, and its result is the sample folders under ``samples_root``.
    """

    spec: RolloutSpec
    checkpoints: tuple[CheckpointRef, ...]
    scenario: PushScenario
    seeds: tuple[int, ...]
    samples_root: str
    agent_cfg: dict = field(hash=False, compare=False)
    """The run's ``params/agent.yaml`` (activation, normalization, action clipping)."""
    trust: bool = False
    """Allow checkpoints that need full unpickling (runs code from the file)."""
    env_config: dict = field(default_factory=dict, hash=False, compare=False)
    """The resolved evaluation env config (:func:`eval_env_config`): reward terms and
    weights, terminations, events, physics. Part of every sample folder's identity."""
    versions: dict = field(default_factory=lambda: stack_versions(), hash=False, compare=False)
    """:func:`stack_versions` where the job was planned, so a Ray worker writes the key the
    driver looks for (a worker's own stack is checked against it before it runs)."""

    def identity(self, checkpoint: CheckpointRef, seed: int) -> dict:
        """What produced one sample folder (not where or when): every setting that changes the
        samples, the checkpoint's bytes, and the versions of the simulation stack."""
        return {
            "spec": self.spec.identity(),
            "scenario": self.scenario.record(),
            "postconv": __version__,  # the task configs and the rollout code come with it
            "seed": seed,
            "checkpoint": checkpoint.sha256,
            "actor": actor_identity(self.agent_cfg),
            "env_config": self._env_config_hash,
            "versions": self.versions,
        }

    @functools.cached_property
    def _env_config_hash(self) -> str | None:
        return config_hash(self.env_config) if self.env_config else None

    def key(self, checkpoint: CheckpointRef, seed: int) -> str:
        """Short hash of :meth:`identity`: a folder with this key in its meta.json is reused."""
        return config_hash(self.identity(checkpoint, seed))

    def folder(self, checkpoint: CheckpointRef, seed: int) -> Path:
        return sample_dir(Path(self.samples_root), self.scenario.name, checkpoint.name, seed)

    def todo(self) -> dict[int, tuple[CheckpointRef, ...]]:
        """Per seed, the checkpoints whose samples are not yet on disk and valid."""
        todo = {}
        for seed in self.seeds:
            missing = tuple(
                c for c in self.checkpoints if not is_complete(self.folder(c, seed), self.key(c, seed))
            )
            if missing:
                todo[seed] = missing
        return todo


STACK = ("isaaclab", "newton", "warp-lang", "mujoco-warp", "torch")
"""Distributions whose version changes the physics or the policy's arithmetic."""


@functools.cache
def stack_versions() -> dict[str, str | None]:
    """Installed versions of :data:`STACK` (None where absent)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in STACK:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def actor_identity(agent_cfg: dict) -> dict:
    """The parts of the runner config that decide what a checkpoint's actor computes."""
    keys = ("actor", "policy", "obs_groups", "empirical_normalization", "clip_actions")
    return {k: agent_cfg.get(k) for k in keys}


def eval_env_config(spec: RolloutSpec) -> dict:
    """The evaluation env config of ``spec`` as a plain dict (Isaac Lab's ``to_dict``: stable
    across processes), for the samples' identity. Needs the Isaac Lab stack."""
    from postconv.tasks.velocity import make_eval_cfg

    cfg = make_eval_cfg(TASK_KINDS[spec.task], NO_PUSH, num_envs=spec.num_envs, presets=spec.presets)
    return json.loads(json.dumps(cfg.to_dict(), sort_keys=True, default=str))


def differences(old_meta: dict, job: EvalJob, checkpoint: CheckpointRef, seed: int) -> list[str]:
    """What differs between the settings a sample folder was made with and ``job``'s, in words
    (e.g. ``env config rewards.alive.weight: 1.0 -> 2.0``), for the message before a recompute."""
    old = old_meta.get("identity")
    if old is None:
        return ["made by an older postconv that did not record its settings"]
    new = json.loads(json.dumps(job.identity(checkpoint, seed), default=str))
    out = []
    for name, value in new.items():
        before = old.get(name)
        if before == value:
            continue
        if name == "env_config":
            paths = _changed_paths(old_meta.get("env_config") or {}, job.env_config)
            out.append(
                "env config "
                + ("; ".join(paths[:3]) + (" ..." if len(paths) > 3 else "") if paths else "changed")
            )
        elif isinstance(value, dict) and isinstance(before, dict):
            out += [f"{name} {k}: {before.get(k)} -> {v}" for k, v in value.items() if before.get(k) != v]
        else:
            out.append(f"{name}: {before} -> {value}")
    return out


def _changed_paths(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            p for k in sorted(set(a) | set(b)) for p in _changed_paths(a.get(k), b.get(k), f"{prefix}{k}.")
        ]
    return [] if a == b else [f"{prefix[:-1]}: {a} -> {b}"]


@dataclass
class JobResult:
    """What running a job did."""

    written: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Checkpoint name -> why it could not be evaluated."""
    env_steps: int = 0
    seconds: float = 0.0


def env_steps_bar(total: int, desc: str = "evaluating"):
    """The evaluation's progress bar: env steps done, env-steps/s (one process or the whole cluster)."""
    from tqdm import tqdm

    return tqdm(total=total, unit="env-step", unit_scale=True, desc=desc, dynamic_ncols=True, mininterval=2.0)


def checkpoint_ref(path: Path, iteration: int) -> CheckpointRef:
    return CheckpointRef(str(path), path.stem, iteration, file_sha256(path))


class GroupPolicy:
    """G deterministic actors, each applied to its own group of m envs.

    obs (G*m, obs_dim) -> actions (G*m, act_dim). Each group is one batched forward pass
    over its m envs. The groups are deliberately not fused into one batched matrix product
    (``bmm``): its kernel choice depends on G, which changes the last bits of the actions
    (measured here for m < 4), and then a checkpoint's samples would depend on which
    group it was evaluated in. Per group, the computation is the same whatever G is.
    """

    def __init__(self, actors: Sequence[DeterministicActor | None], m: int, device: str | torch.device):
        self.m = m
        self.actors = [a.to(device) if a is not None else None for a in actors]
        self.act_dim = next(a.act_dim for a in self.actors if a is not None)

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        actions = obs.new_zeros(obs.shape[0], self.act_dim)  # groups without a checkpoint stand still
        for j, actor in enumerate(self.actors):
            if actor is not None:
                actions[j * self.m : (j + 1) * self.m] = actor(obs[j * self.m : (j + 1) * self.m])
        return actions


@contextlib.contextmanager
def open_env(cfg, device: str = "cpu", quiet: bool = True):
    """An Isaac Lab ``ManagerBasedRLEnv`` of ``cfg``, kit-less, closed on exit.

    Isaac Lab keeps one simulation per process: build one env per process. With ``quiet``,
    the manager tables Isaac Lab prints while building are kept out of the way (and shown
    if the build fails).
    """
    from isaaclab.app import launch_simulation

    cfg.sim.device = device
    log = io.StringIO()
    with contextlib.ExitStack() as stack:
        try:
            with contextlib.redirect_stdout(log) if quiet else contextlib.nullcontext():
                stack.enter_context(launch_simulation(cfg, {"headless": True, "device": device}))
                from isaaclab.envs import ManagerBasedRLEnv

                env = ManagerBasedRLEnv(cfg=cfg)
        except Exception:
            sys.stdout.write(log.getvalue())
            raise
        stack.callback(env.close)
        yield env


class Evaluator:
    """One evaluation env in this process, built for the first job's spec and reused.

    Args:
        buffer_bytes: samples buffered (on the device, and as much on the host) before a
            write to disk: the memory a rollout holds whatever its length or env count.
    """

    def __init__(self, buffer_bytes: int = 64 << 20):
        self.buffer_bytes = buffer_bytes
        self.env = None
        self.step_seconds = 0.0
        self._built_for: tuple | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.env = None
        self._stack.close()

    def _ensure_env(self, spec: RolloutSpec) -> None:
        key = (spec.task, spec.envs_per_checkpoint, spec.num_envs, spec.device, spec.presets, spec.features)
        if self._built_for == key:
            return
        if self._built_for is not None:
            raise RuntimeError(
                f"this process already simulates {self._built_for}; Isaac Lab keeps one simulation per process, "
                "so evaluate another task or env in a new process"
            )
        from postconv.tasks import crn
        from postconv.tasks.velocity import make_eval_cfg

        cfg = make_eval_cfg(TASK_KINDS[spec.task], NO_PUSH, num_envs=spec.num_envs, presets=spec.presets)
        self.env = self._stack.enter_context(open_env(cfg, spec.device))
        self.crn = crn.attach(self.env, slots=spec.envs_per_checkpoint, seed=0)
        self.dynamics = None  # the robot's nominal dynamics, read on the first +dyn job
        self._built_for = key
        self._observe_before_reset(spec)

    def _observe_before_reset(self, spec: RolloutSpec) -> None:
        """Read features when rewards are computed: after the physics, before the step's resets."""
        env = self.env
        compute = env.reward_manager.compute
        self._features = torch.zeros(env.num_envs, len(spec.feature_names), device=env.device)

        def compute_then_observe(dt):
            reward = compute(dt)
            torch.cat([read_feature(env, f) for f in spec.features], dim=1, out=self._features)
            return reward

        env.reward_manager.compute = compute_then_observe

    @property
    def obs_dim(self) -> int:
        return int(self.env.observation_manager.group_obs_dim["policy"][0])

    def run(self, job: EvalJob, on_steps: Callable[[int], None] | None = None) -> JobResult:
        """Evaluate ``job``'s checkpoints that have no valid samples yet; write their folders."""
        result = JobResult()
        todo = job.todo()
        if not todo:
            return result
        spec = job.spec
        if len(job.checkpoints) > spec.groups:
            raise ValueError(f"job has {len(job.checkpoints)} checkpoints for an env of {spec.groups} groups")
        self._ensure_env(spec)
        if job.versions != stack_versions():  # the key says the planner's stack: say this one differs
            print(
                f"[postconv] warning: this worker runs {stack_versions()}, the evaluation was planned with "
                f"{job.versions}; its samples record both (meta.json worker_versions)",
                file=sys.stderr,
            )
        env = self.env
        act_dim = env.action_manager.total_action_dim
        actors: dict[str, DeterministicActor] = {}
        for c in {c for pending in todo.values() for c in pending}:
            try:
                actors[c.name] = load_actor(
                    Path(c.path), job.agent_cfg, self.obs_dim, act_dim, trust=job.trust
                )
            except CheckpointError as err:
                result.skipped[c.name] = str(err)
        clip = job.agent_cfg.get("clip_actions")
        from postconv.tasks import crn

        crn.set_push(env, job.scenario.interval_s, job.scenario.velocity)
        start = time.perf_counter()
        for seed, pending in todo.items():
            group = [c for c in pending if c.name in actors]
            if not group:
                continue
            policy = GroupPolicy(
                [actors[c.name] for c in group] + [None] * (spec.groups - len(group)),
                spec.envs_per_checkpoint,
                env.device,
            )
            # one guard from the first writer made to the last one published: Ctrl-C anywhere
            # in between leaves no partial folder of this process (published ones stay)
            writers: dict[str, SampleWriter] = {}
            try:
                for c in group:
                    writers[c.name] = SampleWriter(
                        job.folder(c, seed),
                        spec.steps,
                        spec.envs_per_checkpoint,
                        len(env.reward_manager.active_terms),
                        len(spec.feature_names),
                    )
                seconds, age_at_start, draws = self._rollout(
                    spec, seed, job.scenario.dynamics, policy, clip, list(writers.values()), on_steps
                )
                m = spec.envs_per_checkpoint
                for j, c in enumerate(group):
                    meta = self._meta(job, c, seed, seconds)
                    meta["age_at_start"] = age_at_start[j * m : (j + 1) * m].tolist()
                    if draws is not None:
                        meta["dynamics_draws"] = draws.slots(m)
                    result.written.append(writers[c.name].finish(meta))
            except BaseException:
                for c in group:  # also a writer interrupted before it reached `writers`
                    discard_partials(job.folder(c, seed))
                raise
            result.env_steps += (spec.burn_in_steps + spec.steps) * env.num_envs
        result.seconds = time.perf_counter() - start
        return result

    def _rollout(self, spec, seed, dynamics, policy, clip, writers, on_steps):
        """Roll one seed out; returns its seconds, each env's steps since its last reset at
        the first recorded step (the burn-in, less where it reset during the burn-in) and the
        dynamics draws (None for the nominal robot)."""
        from postconv.tasks.dynamics import RobotDynamics, draw

        env, m = self.env, spec.envs_per_checkpoint
        n_live = len(writers)
        self.crn.restart(seed)
        draws = None if dynamics is None else draw(dynamics, self.crn)
        if draws is not None and self.dynamics is None:
            self.dynamics = RobotDynamics(env)
        if self.dynamics is not None:  # a nominal job after a +dyn one puts the robot back
            self.dynamics.apply(draws)
        delay = None if draws is None or not draws.delayed.any() else ActionDelay(draws.delayed)
        obs = env.reset()[0]["policy"]
        self.step_seconds = 0.0  # inside env.step: the rest is the evaluation's own cost
        episode = torch.zeros(env.num_envs, dtype=torch.int32, device=env.device)
        age = torch.zeros(env.num_envs, dtype=torch.int32, device=env.device)  # steps since reset
        per_step = env.num_envs * 4 * (len(env.reward_manager.active_terms) + len(spec.feature_names) + 4)
        chunk = max(1, min(spec.steps, self.buffer_bytes // per_step))
        buf = {
            "terms": torch.zeros(
                chunk, env.num_envs, len(env.reward_manager.active_terms), device=env.device
            ),
            "psi": torch.zeros(chunk, env.num_envs, device=env.device),
            "features": torch.zeros(chunk, env.num_envs, len(spec.feature_names), device=env.device),
            "episode": torch.zeros(chunk, env.num_envs, dtype=torch.int32, device=env.device),
            "terminated": torch.zeros(chunk, env.num_envs, dtype=torch.bool, device=env.device),
            "truncated": torch.zeros(chunk, env.num_envs, dtype=torch.bool, device=env.device),
        }
        step_dt = env.step_dt
        start = time.perf_counter()
        total = spec.burn_in_steps + spec.steps
        for t in range(total):
            actions = policy(obs)
            if clip is not None:
                actions = actions.clamp(-clip, clip)
            sent = actions if delay is None else delay.send(actions)
            tick = time.perf_counter()
            out, reward, terminated, truncated, _ = env.step(sent)
            self.step_seconds += time.perf_counter() - tick
            obs = out["policy"]
            r = t - spec.burn_in_steps
            if r >= 0:
                i = r % chunk
                buf["terms"][i] = env.reward_manager._step_reward * step_dt
                buf["psi"][i] = reward
                buf["features"][i] = self._features
                buf["episode"][i] = episode
                buf["terminated"][i] = terminated
                buf["truncated"][i] = truncated
                if i == chunk - 1 or r == spec.steps - 1:
                    self._flush(buf, i + 1, r - i, writers, m, n_live)
            if r == 0:  # a reset during the burn-in makes the first recorded episode younger
                age_at_start = age.cpu().numpy().copy()
            done = terminated | truncated
            if delay is not None:
                delay.stepped(actions, done)
            age = torch.where(done, 0, age + 1)
            if r >= 0:
                episode += done.to(torch.int32)
            if on_steps is not None:
                on_steps(env.num_envs)
            interrupt.check()
        return time.perf_counter() - start, age_at_start, draws

    @staticmethod
    def _flush(buf, length, t0, writers, m, n_live) -> None:
        host = {name: b[:length, : n_live * m].cpu().numpy() for name, b in buf.items()}
        for j, writer in enumerate(writers):
            writer.write(t0, {name: a[:, j * m : (j + 1) * m] for name, a in host.items()})

    def _meta(self, job: EvalJob, c: CheckpointRef, seed: int, seconds: float) -> dict:
        env = self.env
        return {
            "key": job.key(c, seed),
            "identity": job.identity(c, seed),
            "worker_versions": stack_versions(),
            "env_config": job.env_config,
            "task": job.spec.task,
            "scenario": job.scenario.record(),
            "seed": seed,
            "checkpoint": {"name": c.name, "iteration": c.iteration, "sha256": c.sha256, "path": c.path},
            "spec": asdict(job.spec),
            "reward_terms": list(env.reward_manager.active_terms),
            "feature_names": list(job.spec.feature_names),
            "step_dt": env.step_dt,
            "env_slots": "column j of every array is env slot j (the same world for every checkpoint)",
            "groups_in_env": job.spec.groups,
            "env_steps_per_s": (job.spec.burn_in_steps + job.spec.steps) * env.num_envs / max(seconds, 1e-9),
            "device": str(env.device),
            "postconv_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }


def plan_jobs(
    spec: RolloutSpec,
    checkpoints: Sequence[CheckpointRef],
    scenarios: Sequence[PushScenario],
    seeds: Sequence[int],
    samples_root: Path,
    agent_cfg: dict,
    checkpoints_per_job: int,
    seeds_per_job: int = 1,
    trust: bool = False,
    *,
    env_config: dict,
) -> list[EvalJob]:
    """Split an evaluation into jobs: checkpoint groups x scenarios x seed ranges.
    ``env_config``: :func:`eval_env_config` of ``spec`` (``{}`` leaves it out of the identity)."""
    jobs = []
    for scenario in scenarios:
        for s0 in range(0, len(seeds), seeds_per_job):
            for c0 in range(0, len(checkpoints), checkpoints_per_job):
                jobs.append(
                    EvalJob(
                        spec=spec,
                        checkpoints=tuple(checkpoints[c0 : c0 + checkpoints_per_job]),
                        scenario=scenario,
                        seeds=tuple(seeds[s0 : s0 + seeds_per_job]),
                        samples_root=str(samples_root),
                        agent_cfg=agent_cfg,
                        trust=trust,
                        env_config=env_config,
                    )
                )
    return jobs
