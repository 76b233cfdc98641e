"""The post-convergence stage: candidates -> rollouts -> samples -> selection -> results.

:func:`evaluate` schedules the evaluation jobs of a run (the loop here; one job's work is
:meth:`postconv.rollout.Evaluator.run`), :func:`select_run` ranks the checkpoints from the
stored samples, :func:`run_stage` does both. Everything lands in ``<run>/postconv/``:

- ``samples/<scenario>/<checkpoint>/seed_<s>/``: the samples (:mod:`postconv.sample_store`);
- ``evaluation.json``: candidates and how they were chosen, checkpoints skipped and why,
  throughput;
- ``selection.json`` / ``selection.csv``: the ranking over all scenarios pooled, and
  ``by_scenario/<scenario>.json|csv`` per scenario.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from rich.console import Console

import postconv.report
from postconv.checkpoints import RunError, choose_candidates, open_run, training_envs
from postconv.report import (
    SelectionConfig,
    SelectionResult,
    pass_progress,
    print_summary,
    select,
    select_source,
    streamed_summary,
    wide_console,
    write_results,
)
from postconv.rollout import (
    DEFAULT_SCENARIOS,
    FEATURES,
    TASK_KINDS,
    JobResult,
    RolloutSpec,
    checkpoint_ref,
    eval_env_config,
    parse_scenario,
    plan_jobs,
)
from postconv.run_lock import run_lock
from postconv.sample_store import (
    STAGE_DIR,
    UNITS,
    SampleIndex,
    atomic_write_text,
    complete_checkpoints,
    find_samples,
    read_meta,
    remove_partials,
    samples_root,
    to_sample_set,
)
from postconv.store_source import StoreSource


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
    stand still, and every checkpoint's samples stay the same to the bit."""
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
    """Only checkpoints after the training curve converged (see :func:`postconv.checkpoints.converged_from`)."""
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

    def __post_init__(self) -> None:
        self._check_sizes()
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
        return sized, sizes.why

    def spec(self, task: str) -> RolloutSpec:
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
        why = (
            "the CPU defaults"
            if (n, m) == (CPU_ENVS_PER_CHECKPOINT * CPU_GROUPS, CPU_ENVS_PER_CHECKPOINT)
            else "given"
        )
    else:
        m = envs_per_checkpoint
        if m is None:
            fits = [
                d for d in (256, 128, 64, 32, 16) if num_envs is None or (d <= num_envs and num_envs % d == 0)
            ]
            if not fits:
                raise ValueError(
                    f"--num_envs {num_envs}: on {device} it must be a multiple of 16 (or give --envs-per-checkpoint)"
                )
            m = fits[0]
        n = num_envs
        why = "given" if len(given) == 2 else f"sized for {device}"
        if n is None and known:
            budget = max(training_envs or 4096, GPU_MIN_ENVS, m)
            n = budget // m * m
            source = (
                f"the training's {training_envs} envs"
                if training_envs
                else "no env count in the run's params/env.yaml: 4096"
            )
            why += f" from {source} (at least {GPU_MIN_ENVS})"
    if given and why != "given":
        why += "; given " + ", ".join(given)
    return EvaluationSizes(n, m, why)


@dataclass
class EvaluationReport:
    """What :func:`evaluate` did; also written to ``<run>/postconv/evaluation.json``."""

    run: str
    task: str
    candidates: list[str]
    candidates_reason: str
    scenarios: list[str]
    sample_sets: list[list]
    """[scenario, checkpoint, seed, key] of every sample folder this evaluation stands for."""
    skipped: dict[str, str]
    sample_sets_written: int
    sample_sets_reused: int
    env_steps: int
    seconds: float
    total_env_steps: int = 0
    """Env steps of every evaluation of this run so far (resumed ones included)."""
    total_seconds: float = 0.0
    ray: dict | None = None
    """On Ray: workers, jobs retried after a worker died, jobs given up."""
    converged: bool | None = None
    """Whether the training curve settled (:func:`postconv.checkpoints.convergence`); None
    when the candidates were not chosen by it (``--from-iter``, ``--all-checkpoints``, no curve)."""
    env: dict | None = None
    """The evaluation env as run: num_envs, envs_per_checkpoint, the groups of envs in it and
    the checkpoints a job fills (the others stand still), device, and where the sizes came
    from (on a GPU, the training's env count)."""

    @property
    def env_steps_per_s(self) -> float:
        return self.env_steps / self.seconds if self.seconds else 0.0


def _task_of(run, config: StageConfig) -> str:
    task = config.task or run.task
    if task is None:
        raise RunError(f"{run.path}: no run.json naming the task; pass --task ({' or '.join(TASK_KINDS)})")
    if task not in TASK_KINDS:
        raise RunError(
            f"{run.path}: trained on {task!r}; postconv evaluates {', '.join(TASK_KINDS)} (pass --task)"
        )
    return task


def check_task(task: str, config: StageConfig) -> None:
    """The options that depend on the task, checked before training or any rollout: the stage
    evaluates this task, and ``--psi`` names reward terms it has."""
    if task not in TASK_KINDS:
        raise ValueError(f"task {task!r}: the stage evaluates {', '.join(TASK_KINDS)}; train one of them")
    if config.psi_terms:
        from postconv.tasks.velocity import reward_term_names

        check_psi_terms(config.psi_terms, reward_term_names(TASK_KINDS[task]), task)


def check_psi_terms(psi_terms: dict[str, float], terms: tuple[str, ...], task: str) -> None:
    """``--psi`` names only reward terms the task has."""
    if unknown := sorted(set(psi_terms) - set(terms)):
        raise ValueError(f"--psi: {task} has no reward terms {unknown}; its terms are {', '.join(terms)}")


def evaluate(run_dir: str | Path, config: StageConfig, console: Console | None = None) -> EvaluationReport:
    """Evaluate a run's candidate checkpoints; samples already on disk and valid are reused.

    Holds the run's lock (:mod:`postconv.run_lock`) throughout: a second stage on the same
    run folder fails at once instead of mixing its samples with this one's."""
    console = console or wide_console()
    run, task = _checked_run(run_dir, config)
    with run_lock(run.path / STAGE_DIR):
        return _evaluate(run, task, config, console)


def _checked_run(run_dir: str | Path, config: StageConfig):
    """The run and its task, with every option that depends on them checked, before the lock
    creates anything in the run or any rollout starts."""
    if config.ray is not None:
        from postconv.ray_eval import import_ray

        import_ray()  # says what to install before any work
    run = open_run(run_dir)
    task = _task_of(run, config)
    check_task(task, config)
    return run, task


def _evaluate(run, task: str, config: StageConfig, console: Console) -> EvaluationReport:
    remove_partials(samples_root(run.path))  # killed writers' leftovers: no writer of this run is alive
    chosen = choose_candidates(run, config.from_iter, config.every, config.after_convergence)
    candidates, reason, converged = chosen.checkpoints, chosen.reason, chosen.converged
    style = "[bold yellow]" if converged is False else "[bold]"
    console.print(f"{style}{len(candidates)}[/] candidate checkpoints of {run.path}: {reason}")
    config, why = config.sized_for(training_envs(run))
    console.print(
        f"evaluation env: {config.num_envs} envs, {config.envs_per_checkpoint} per checkpoint, {config.groups} "
        f"checkpoints at once on {config.device} ({why}; change with --num_envs and --envs-per-checkpoint)"
    )
    refs = [checkpoint_ref(c.path, c.iteration) for c in candidates]
    scenarios = [parse_scenario(s) for s in config.scenarios]
    seeds = list(range(config.seed, config.seed + config.num_seeds))
    spec = config.spec(task)
    per_job = config.checkpoints_per_job or config.groups
    jobs = plan_jobs(
        spec, refs, scenarios, seeds, samples_root(run.path), run.agent_cfg, per_job, trust=config.trust,
        env_config=eval_env_config(spec),
    )  # fmt: skip
    pending = [(job, job.todo()) for job in jobs]
    pending = [(job, todo) for job, todo in pending if todo]
    _say_what_differs(pending, console)
    total_sets = len(refs) * len(scenarios) * len(seeds)
    # a group's env steps are spent whatever its size: count the steps of the full env
    steps_todo = sum(len(todo) for _, todo in pending) * (spec.burn_in_steps + spec.steps) * config.num_envs
    report = EvaluationReport(
        run=str(run.path.resolve()),
        task=task,
        candidates=[r.name for r in refs],
        candidates_reason=reason,
        scenarios=[s.name for s in scenarios],
        sample_sets=[
            [j.scenario.name, c.name, seed, j.key(c, seed)]
            for j in jobs
            for c in j.checkpoints
            for seed in j.seeds
        ],
        skipped={},
        sample_sets_written=0,
        sample_sets_reused=total_sets - sum(len(c) for _, todo in pending for c in todo.values()),
        env_steps=0,
        seconds=0.0,
        converged=converged,
        env={
            "num_envs": config.num_envs,
            "envs_per_checkpoint": config.envs_per_checkpoint,
            "groups_in_env": config.groups,
            "checkpoints_per_job": per_job,
            "device": config.device,
            "sizes_from": why,
        },
    )
    if report.sample_sets_reused:
        console.print(f"{report.sample_sets_reused} of {total_sets} sample sets already on disk: reused")
    if pending:
        _run_jobs([job for job, _ in pending], config, steps_todo, report, console)
        remove_partials(samples_root(run.path))  # a Ray worker that died mid-job leaves one
    previous = read_evaluation(run.path) or {}
    report.total_env_steps = report.env_steps + int(previous.get("total_env_steps", 0))
    report.total_seconds = report.seconds + float(previous.get("total_seconds", 0.0))
    _write_report(run.path, report)
    for name, why in report.skipped.items():
        console.print(f"[yellow]skipped {name}[/]: {why}")
    if report.env_steps:
        console.print(
            f"evaluated {report.sample_sets_written} sample sets: {report.env_steps:,} env-steps in "
            f"{report.seconds:.0f} s ({report.env_steps_per_s:,.0f} env-steps/s)"
        )
    return report


def _say_what_differs(pending, console: Console) -> None:
    """Before recomputing sample sets that are on disk but were made another way, say how."""
    from collections import Counter

    from postconv.rollout import differences

    why: Counter[str] = Counter()
    for job, todo in pending:
        for seed, checkpoints in todo.items():
            for c in checkpoints:
                if (meta := read_meta(job.folder(c, seed))) is not None:
                    why["; ".join(differences(meta, job, c, seed)) or "unknown"] += 1
    for reason, count in why.most_common():
        console.print(
            f"[yellow]{count} sample set(s) on disk were made another way[/] ({reason}): recomputing them"
        )


def _add_result(report: EvaluationReport, result: JobResult) -> None:
    report.skipped.update(result.skipped)
    report.sample_sets_written += len(result.written)
    report.env_steps += result.env_steps


def _run_jobs_on_ray(
    jobs, config: StageConfig, steps_todo: int, report: EvaluationReport, console: Console
) -> None:
    from postconv import ray_eval

    with ray_eval.connected(config.ray):
        cluster = ray_eval.run_jobs(
            jobs,
            device=config.device,
            buffer_bytes=config.buffer_mb << 20,
            workers=config.ray_workers,
            retries=config.ray_retries,
            ship=config.ray_ship,
            steps_todo=steps_todo,
            on_result=lambda result: _add_result(report, result),
            console=console,
        )
    report.seconds = cluster.seconds
    report.ray = {"workers": cluster.workers, "retries": cluster.retries, "failed_jobs": len(cluster.failed)}
    for job, why in cluster.failed:
        console.print(f"[red]gave up[/] {ray_eval.describe(job)}: {why}")
        for c in job.checkpoints:
            report.skipped.setdefault(
                c.name, f"{job.scenario.name}: {why}; run the same command again to retry"
            )


def _run_jobs(jobs, config: StageConfig, steps_todo: int, report: EvaluationReport, console: Console) -> None:
    if config.ray is not None:
        return _run_jobs_on_ray(jobs, config, steps_todo, report, console)
    from postconv.rollout import Evaluator, env_steps_bar

    start = time.perf_counter()
    with (
        Evaluator(buffer_bytes=config.buffer_mb << 20) as evaluator,
        env_steps_bar(steps_todo) as bar,
    ):
        for job in jobs:
            bar.set_postfix_str(f"{job.scenario.name}: {', '.join(c.name for c in job.checkpoints)}")
            _add_result(report, evaluator.run(job, on_steps=bar.update))
    report.seconds = time.perf_counter() - start


def _write_report(run_path: Path, report: EvaluationReport) -> Path:
    data = {**asdict(report), "env_steps_per_s": report.env_steps_per_s}
    return atomic_write_text(run_path / STAGE_DIR / "evaluation.json", json.dumps(data, indent=2))


def read_evaluation(run_dir: str | Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / STAGE_DIR / "evaluation.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


@dataclass(frozen=True)
class StageResults:
    """The pooled selection, one per scenario, and where they were written."""

    pooled: SelectionResult
    by_scenario: dict[str, SelectionResult]
    paths: tuple[Path, ...]


def sample_definition(config: StageConfig) -> dict:
    """What one sample of the stage's selection is, for selection.json, W&B and the report."""
    psi = (
        "the task reward"
        if not config.psi_terms
        else " + ".join(f"{w:g} x {t}" for t, w in config.psi_terms.items()) + " (reward terms)"
    )
    settled = f"steps at least {config.burn_in_steps} steps after the env's start or respawn, falls included"
    if config.unit == "episode":
        description = (
            f"one env slot's recording of {config.steps} steps in one scenario: {psi} per step averaged over its "
            f"{settled}"
        )
    else:
        description = f"one recorded step: {psi} of that step, over the {settled}"
    return {
        "unit": config.unit,
        "psi": config.psi_terms or "reward",
        "sense": config.sense,
        "burn_in_steps": config.burn_in_steps,
        "recorded_steps": config.steps,
        "description": description + f" ({'larger' if config.sense == 'reward' else 'smaller'} is better)",
    }


def select_run(run_dir: str | Path, config: StageConfig, console: Console | None = None) -> StageResults:
    """Rank the evaluated checkpoints of a run from its stored samples; write and print the results."""
    console = console or wide_console()
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run folder; pass logs/rsl_rl/<experiment>/<timestamp>")
    if not (run_dir / STAGE_DIR).is_dir():
        raise FileNotFoundError(
            f"{run_dir}: no evaluation on record; run `postconv evaluate {run_dir}` first"
        )
    with run_lock(run_dir / STAGE_DIR):  # an evaluation still writing would change what is read
        return _select_run(run_dir, config, console)


def _select_run(run_dir: Path, config: StageConfig, console: Console) -> StageResults:
    evaluation = read_evaluation(run_dir)
    if evaluation is None or "sample_sets" not in evaluation:
        raise FileNotFoundError(
            f"{run_dir}: no evaluation on record; run `postconv evaluate {run_dir}` first"
        )
    index = find_samples(run_dir, {(sc, c, seed): key for sc, c, seed, key in evaluation["sample_sets"]})
    candidates = evaluation["candidates"]
    out = run_dir / STAGE_DIR
    by_scenario = {}
    paths: list[Path] = []

    masks = Path(tempfile.mkdtemp(prefix="postconv-settled-"))  # shared by the streamed pools
    sample = sample_definition(_as_recorded(config, index))

    def ranked(scenarios: list[str]) -> SelectionResult:
        result, left_out = _select_samples(index, scenarios, candidates, config, console, masks)
        # why a checkpoint is missing: its evaluation's reason first, else what is missing
        skipped = {**left_out, **{c: r for c, r in evaluation["skipped"].items() if c in candidates}}
        skipped.update(
            {
                c: "never evaluated: run `postconv evaluate` again"
                for c in candidates
                if c not in index.iterations and c not in skipped
            }
        )
        ranked_names = {c.name for c in result.checkpoints}
        skipped = {c: r for c, r in skipped.items() if c not in ranked_names}
        return replace(result, skipped=skipped, scenarios=scenarios, sample=sample)

    try:
        for scenario in evaluation["scenarios"]:
            by_scenario[scenario] = ranked([scenario])
            paths += write_results(by_scenario[scenario], out / "by_scenario", stem=scenario)
        pooled = ranked(evaluation["scenarios"])
    finally:
        shutil.rmtree(masks, ignore_errors=True)
    paths = [*write_results(pooled, out), *paths]
    print_summary(pooled, tuple(paths[:2]), console)
    for name, result in by_scenario.items():
        console.print(
            f"  {name}: chosen {result.chosen}"
            + (f" (mean: {result.chosen_by_mean})" if result.chosen_by_mean != result.chosen else "")
        )
    console.print(f"per-scenario results in {out / 'by_scenario'}")
    if config.report:
        from postconv.review import review

        review(run_dir, index, pooled, by_scenario, dict(index.iterations), config, console)
    return StageResults(pooled=pooled, by_scenario=by_scenario, paths=tuple(paths))


def _as_recorded(config: StageConfig, index: SampleIndex) -> StageConfig:
    """``config`` with the recorded and burn-in steps the samples were made with (``postconv
    select`` has no options for them: its config holds the defaults)."""
    folder = next(iter(index.folders.values()), None)
    spec = ((read_meta(folder) if folder else None) or {}).get("spec", {})
    return replace(
        config,
        steps=int(spec.get("steps", config.steps)),
        burn_in_steps=int(spec.get("burn_in_steps", config.burn_in_steps)),
    )


def _select_samples(
    index: SampleIndex, scenarios: list[str], candidates, config: StageConfig, console: Console, masks: Path
) -> tuple[SelectionResult, dict[str, str]]:
    """The selection of one pool of scenarios, and the checkpoints left out with the reason:
    from samples stacked in memory, or streamed from disk when they are many (the settled
    masks cached in ``masks``, shared by the pools)."""
    kept, left_out, units = complete_checkpoints(index, scenarios, candidates)
    size = len(kept) * sum(math.prod(index.steps[(sc, kept[0], seed)]) for sc, seed in units)
    label = "+".join(scenarios)
    if config.unit != "step" or size <= postconv.report.STREAM_SAMPLES:  # read now: tests lower it
        with console.status(f"selecting ({label})"):
            samples, left_out = to_sample_set(
                index, scenarios, candidates, config.psi_terms, config.sense, config.unit
            )
            return select(samples, config.selection), left_out
    with (
        pass_progress(console, f"selecting ({label})") as progress,
        StoreSource(index, kept, units, config.psi_terms, progress, masks) as source,
    ):
        result = select_source(source, tuple(kept), config.sense, config.selection)
    console.print(f"selected {label} from {streamed_summary(result, 'disk')}")
    return result, left_out


def run_stage(run_dir: str | Path, config: StageConfig, console: Console | None = None) -> StageResults:
    """Evaluate, then select: the whole post-convergence stage on one run."""
    console = console or wide_console()
    run, task = _checked_run(run_dir, config)
    with run_lock(run.path / STAGE_DIR):  # held from the first rollout to the last result
        _evaluate(run, task, config, console)
        results = select_run(run_dir, config, console)
    if config.sim2sim or config.stress:
        from postconv.sim2sim.evaluate import Sim2SimConfig
        from postconv.sim2sim.judge import run_and_judge
        from postconv.sim2sim.stress import StressConfig

        s2s = Sim2SimConfig(
            seed=config.seed, trust=config.trust, wandb=config.wandb and config.report,
            stress=StressConfig() if config.stress else None,
        )  # fmt: skip
        run_and_judge(run_dir, s2s, console)
    return results


__all__ = [
    "EvaluationReport",
    "StageConfig",
    "StageResults",
    "evaluate",
    "read_evaluation",
    "run_stage",
    "select_run",
]
