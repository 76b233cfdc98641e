"""The post-convergence stage's options (:class:`StageConfig`) and the evaluation env's sizes.

Light: the CLI builds and checks a config without importing torch or a simulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from postconv.ranking.config import SelectionConfig
from postconv.storage.sample import UNITS
from postconv.tasks.features import FEATURES
from postconv.tasks.scenarios import DEFAULT_SCENARIOS, parse_scenario

if TYPE_CHECKING:
    from postconv.evaluation.rollout import RolloutSpec


@dataclass(frozen=True)
class StageConfig:
    """Every option of the post-convergence stage; the CLI flags map onto these fields."""

    task: str | None = None
    """Isaac Lab task id; default: the task recorded in the run's ``run.json``."""
    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    """Push scenarios: ``none`` or ``VELOCITY@LOW-HIGH`` (m/s kicks every LOW to HIGH s), either with
    ``+dyn`` for per-env dynamics draws (weaker actuators, heavier torso, lower foot friction, a
    one-step action delay: :data:`~postconv.tasks.scenarios.MILD_DYNAMICS`)."""
    num_envs: int | None = None
    """Envs of the evaluation env (Isaac Lab's ``--num_envs``), shared by a group of
    ``num_envs // envs_per_checkpoint`` checkpoints evaluated at once. None: sized for the
    device (:func:`evaluation_sizes`: 64 on the CPU; on a GPU the training's env count, at
    least 1024, known when the stage starts)."""
    envs_per_checkpoint: int | None = None
    """Envs each checkpoint drives (common random numbers: env j is the same world for all).
    None: 16 on the CPU, 256 on a GPU."""
    steps: int = 250
    """Recorded steps per env and seed (at 50 Hz)."""
    burn_in_steps: int = 50
    """Steps after each reset of the whole env that are not recorded."""
    seed: int = 0
    """First seed of the common random numbers (Isaac Lab's ``--seed``)."""
    checkpoints_per_job: int | None = None
    """Checkpoints per evaluation job (default: as many as the env has groups). Fewer make
    finer units of work (resume, distribution); the env keeps its size, its idle groups
    stand still, and every checkpoint's samples stay the same (to the bit on the CPU; a GPU's
    physics is not bitwise reproducible by default)."""
    num_seeds: int = 1
    """Independent rollouts per checkpoint and scenario, seeds ``seed .. seed + num_seeds - 1``."""
    device: str = "cpu"
    """Simulation and policy device (Isaac Lab's ``--device``): ``cpu`` or ``cuda:0``."""
    features: tuple[str, ...] = tuple(FEATURES)
    """State features stored with the samples."""
    from_iter: int | None = None
    """Evaluate checkpoints from this iteration on (overrides the convergence rule)."""
    every: int | None = None
    """Keep every n-th candidate (counting back from the last)."""
    after_convergence: bool = True
    """Only checkpoints after the training curve converged (see :func:`postconv.storage.checkpoints.converged_from`)."""
    trust: bool = False
    """Load checkpoints that need full unpickling (runs code from the file): only for trusted sources."""
    psi_terms: dict[str, float] | None = None
    """Performance as a weighted sum of reward terms instead of the task reward, e.g.
    ``{"track_linear_velocity": 1.0}``; read from the stored terms, no re-evaluation."""
    sense: str = "reward"
    """"reward" (larger is better) or "cost"."""
    unit: str = "episode"
    """One sample per ``episode`` (an env slot's recording: its reward averaged over the
    recorded steps, falls and respawns included) or per ``step``. Per episode by default:
    in the selection-quality study (README) the per-step worst case ranked no better than the
    plain mean (pooled Spearman +0.21 against +0.19 over 3 seeds), the per-episode one did
    (+0.48 +- 0.07 at k = 2 and 4, every seed's interval above zero). The study's episodes
    summed every recorded step; the stage also leaves each respawn's burn-in out (not
    measured by the study)."""
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    """The k sweep, divergence, bootstrap."""
    report: bool = True
    """After the selection: charts, ``report/report.html``, the chosen policy exported, W&B."""
    wandb: bool = True
    """Log the selection to W&B (offline without credentials); needs ``report``."""
    wandb_project: str | None = None
    """W&B project; default: the training's, else ``postconv``."""
    buffer_mb: int = 64
    """Samples held in memory (on the device, and as much on the host) before they go to
    disk: the rollout's memory whatever its length or env count."""
    ray: str | None = None
    """Evaluate on Ray: ``local`` starts a cluster on this machine, ``auto`` or ``HOST:PORT``
    (or ``ray://...``) joins one; one worker per GPU (``cuda`` devices) or CPU. None: in this process."""
    ray_workers: int | None = None
    """Ray workers, at most the cluster's GPUs (or CPUs) and one per job (default: that many)."""
    ray_retries: int = 2
    """Times a job is started again after its Ray worker died (killed, out of memory, node lost)."""
    ray_ship: bool = False
    """The Ray workers do not share the run folder's file system: checkpoints and samples
    travel through Ray's object store."""
    sim2sim: bool = False
    """After the selection, replay the ranked checkpoints in the default shifted C MuJoCo
    worlds and judge the ranking by them (``postconv sim2sim`` with its defaults)."""
    stress: bool = False
    """Replay as ``sim2sim`` does and also search each checkpoint's robustness margins
    (``postconv sim2sim --stress`` with its defaults); implies ``sim2sim``."""
    sizes_given: tuple[int | None, int | None] | None = field(default=None, repr=False, compare=False)
    """``(num_envs, envs_per_checkpoint)`` as given, before the defaults filled them in (set by
    the constructor): what :meth:`sized_for` reports as given. Only the message reads it."""

    def __post_init__(self) -> None:
        self._check_sizes()
        if self.sizes_given is None:
            object.__setattr__(self, "sizes_given", (self.num_envs, self.envs_per_checkpoint))
        # every size that does not wait for the training run is set (and checked) now
        sizes = evaluation_sizes(self.device, None, self.num_envs, self.envs_per_checkpoint, known=False)
        object.__setattr__(self, "num_envs", sizes.num_envs)
        object.__setattr__(self, "envs_per_checkpoint", sizes.envs_per_checkpoint)
        if self.sized:
            self._check_groups()
        if self.ray_retries < 0 or (self.ray_workers is not None and self.ray_workers < 1):
            raise ValueError(
                f"ray_workers must be >= 1 and ray_retries >= 0; got {self.ray_workers} and {self.ray_retries}"
            )
        if self.unit not in UNITS:
            raise ValueError(f"--unit {self.unit!r}: choose one of {', '.join(UNITS)}")
        if self.sense not in ("reward", "cost"):
            raise ValueError(f"sense must be 'reward' or 'cost'; got {self.sense!r}")
        names = [parse_scenario(s).name for s in self.scenarios]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"give one or more distinct scenarios; got {list(self.scenarios)}")

    @property
    def sized(self) -> bool:
        """Both env sizes are known (on a GPU they may wait for the candidates)."""
        return self.num_envs is not None and self.envs_per_checkpoint is not None

    def _check_groups(self) -> None:
        if self.num_envs < self.envs_per_checkpoint:
            raise ValueError(
                f"num_envs ({self.num_envs}) is smaller than envs_per_checkpoint ({self.envs_per_checkpoint}); "
                "raise --num_envs or lower --envs-per-checkpoint"
            )
        if self.num_envs % self.envs_per_checkpoint:
            raise ValueError(
                f"num_envs ({self.num_envs}) is not a multiple of envs_per_checkpoint ({self.envs_per_checkpoint}); "
                f"use --num_envs {self.groups * self.envs_per_checkpoint} or {(self.groups + 1) * self.envs_per_checkpoint}"
            )
        if self.checkpoints_per_job is not None and not 1 <= self.checkpoints_per_job <= self.groups:
            raise ValueError(
                f"checkpoints_per_job must be between 1 and the env's {self.groups} groups; got {self.checkpoints_per_job}"
            )

    def _check_sizes(self) -> None:
        """Every count and choice checked before any work, the message naming its CLI option."""
        at_least = {
            "--envs-per-checkpoint": (self.envs_per_checkpoint, 1), "--num_envs": (self.num_envs, 1),
            "--steps": (self.steps, 1), "--burn-in": (self.burn_in_steps, 0), "--num-seeds": (self.num_seeds, 1),
            "--seed": (self.seed, 0), "--every": (self.every, 1), "--from-iter": (self.from_iter, 0),
            "--buffer-mb": (self.buffer_mb, 1), "--checkpoints-per-job": (self.checkpoints_per_job, 1),
        }  # fmt: skip
        for option, (value, low) in at_least.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(f"{option} must be an integer >= {low}; got {value!r}")
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ValueError(f"--features: unknown {unknown}; choose from {', '.join(FEATURES)}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"--device {self.device!r}: use cpu, cuda or cuda:<index>")
        for term, weight in (self.psi_terms or {}).items():
            if not term or not math.isfinite(weight):
                raise ValueError(
                    f"--psi {term}={weight}: write TERM=WEIGHT with a finite weight, e.g. track_linear_velocity=1"
                )

    @property
    def groups(self) -> int:
        if not self.sized:
            raise ValueError("the evaluation's env size waits for the training's: call sized_for() first")
        return self.num_envs // self.envs_per_checkpoint

    def sized_for(self, training_envs: int | None) -> tuple[StageConfig, str]:
        """This config with its env sizes filled in (on a GPU from the training's env count),
        and a sentence saying where they came from. ``checkpoints_per_job`` is capped at the
        groups the env turned out to have."""
        sizes = evaluation_sizes(self.device, training_envs, self.num_envs, self.envs_per_checkpoint)
        groups = sizes.num_envs // sizes.envs_per_checkpoint
        per_job = None if self.checkpoints_per_job is None else min(self.checkpoints_per_job, groups)
        sized = replace(
            self,
            num_envs=sizes.num_envs,
            envs_per_checkpoint=sizes.envs_per_checkpoint,
            checkpoints_per_job=per_job,
        )
        return sized, evaluation_sizes(self.device, training_envs, *self._given()).why

    def _given(self) -> tuple[int | None, int | None]:
        """The sizes the user chose: those given to the constructor, and any that differ from
        what the defaults filled in (set through ``dataclasses.replace``)."""
        given = self.sizes_given or (None, None)
        filled = evaluation_sizes(self.device, None, *given, known=False)
        return (
            self.num_envs if self.num_envs != filled.num_envs else given[0],
            self.envs_per_checkpoint if self.envs_per_checkpoint != filled.envs_per_checkpoint else given[1],
        )

    def spec(self, task: str) -> RolloutSpec:
        from postconv.evaluation.rollout import RolloutSpec

        return RolloutSpec(
            task=task,
            envs_per_checkpoint=self.envs_per_checkpoint,
            burn_in_steps=self.burn_in_steps,
            steps=self.steps,
            features=tuple(self.features),
            num_envs=self.num_envs,
            device=self.device,
        )


CPU_ENVS_PER_CHECKPOINT, CPU_GROUPS = 16, 4
"""CPU sizes: 4 checkpoints x 16 envs (the env's cost on a CPU grows with its size)."""
GPU_ENVS_PER_CHECKPOINT = 256
"""Envs per checkpoint on a GPU: hundreds of trajectories for tight intervals, and 16
checkpoints at once in a 4096-env training's budget."""
GPU_MIN_ENVS = 1024
"""The smallest GPU budget: a GPU steps 1024 envs about as fast as 64."""


@dataclass(frozen=True)
class EvaluationSizes:
    num_envs: int | None
    """None: on a GPU, known once the training's env count is."""
    envs_per_checkpoint: int
    why: str


def evaluation_sizes(
    device: str,
    training_envs: int | None = None,
    num_envs: int | None = None,
    envs_per_checkpoint: int | None = None,
    known: bool = True,
) -> EvaluationSizes:
    """The evaluation env's sizes: those given, the rest chosen for the device.

    CPU: 16 envs per checkpoint, 4 checkpoints at once (64 envs). GPU: 256 envs per
    checkpoint (the largest of 256, 128, 64, 32, 16 that divides a given ``num_envs``) and,
    unless given, ``num_envs`` = the training's env count (at least 1024) rounded down to a
    multiple of that. The sizes never depend on the candidates, so a rerun with other
    candidates reuses every sample set (the env's size is part of a sample set's identity).
    ``known=False``: the training's env count is not known yet (``num_envs`` stays None).
    """
    given = [
        f"--{o} {v}"
        for o, v in (("num_envs", num_envs), ("envs-per-checkpoint", envs_per_checkpoint))
        if v is not None
    ]
    if device == "cpu":
        m = CPU_ENVS_PER_CHECKPOINT if envs_per_checkpoint is None else envs_per_checkpoint
        n = m * CPU_GROUPS if num_envs is None else num_envs
        why = "the CPU defaults"
    else:
        m = envs_per_checkpoint
        if m is None:
            fits = [
                d
                for d in (GPU_ENVS_PER_CHECKPOINT, 128, 64, 32, 16)
                if num_envs is None or (d <= num_envs and num_envs % d == 0)
            ]
            if not fits:
                raise ValueError(
                    f"--num_envs {num_envs}: on {device} it must be a multiple of 16 (or give --envs-per-checkpoint)"
                )
            m = fits[0]
        n = num_envs
        why = f"sized for {device}"
        if n is None and known:
            budget = max(training_envs or 4096, GPU_MIN_ENVS, m)
            n = budget // m * m
            source = (
                f"the training's {training_envs} envs"
                if training_envs
                else "no env count in the run's params/env.yaml: 4096"
            )
            why += f" from {source} (at least {GPU_MIN_ENVS})"
    if len(given) == 2:
        why = "given " + ", ".join(given)
    elif given:
        why += "; given " + ", ".join(given)
    return EvaluationSizes(n, m, why)
