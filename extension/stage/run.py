"""The post-convergence stage: candidates -> rollouts -> samples -> selection -> results.

:func:`evaluate` schedules the evaluation jobs of a run (the loop here; one job's work is
:meth:`postconv.evaluation.rollout.Evaluator.run`), :func:`select_run` ranks the checkpoints from the
stored samples, :func:`run_stage` does both. Everything lands in ``<run>/postconv/``:

- ``samples/<scenario>/<checkpoint>/seed_<s>/``: the samples (:mod:`postconv.storage.sample_store`);
- ``evaluation.json``: candidates and how they were chosen, checkpoints skipped and why,
  throughput;
- ``selection.json`` / ``selection.csv``: the ranking over all scenarios pooled, and
  ``by_scenario/<scenario>.json|csv`` per scenario.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console

import postconv.ranking.select
from postconv.console import wide_console
from postconv.evaluation.rollout import JobResult, checkpoint_ref, eval_env_config, plan_jobs
from postconv.ranking.result import SelectionResult, write_results
from postconv.ranking.select import select, select_source
from postconv.review.console_report import pass_progress, print_summary, streamed_summary
from postconv.stage.config import StageConfig
from postconv.storage.checkpoints import RunError, choose_candidates, open_run, training_envs
from postconv.storage.evaluation_record import EvaluationReport, read_evaluation, write_evaluation
from postconv.storage.run_lock import run_lock
from postconv.storage.sample_store import (
    STAGE_DIR,
    SampleIndex,
    complete_checkpoints,
    find_samples,
    read_meta,
    remove_partials,
    samples_root,
    to_sample_set,
)
from postconv.storage.store_source import StoreSource
from postconv.tasks import TASK_KINDS
from postconv.tasks.scenarios import parse_scenario


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

    Holds the run's lock (:mod:`postconv.storage.run_lock`) throughout: a second stage on the same
    run folder fails at once instead of mixing its samples with this one's."""
    console = console or wide_console()
    run, task = _checked_run(run_dir, config)
    with run_lock(run.path / STAGE_DIR):
        return _evaluate(run, task, config, console)


def _checked_run(run_dir: str | Path, config: StageConfig):
    """The run and its task, with every option that depends on them checked, before the lock
    creates anything in the run or any rollout starts."""
    if config.ray is not None:
        from postconv.evaluation.ray_eval import import_ray

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
    refs, unreadable = _readable(candidates)
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
        candidates=[c.name for c in candidates],
        candidates_reason=reason,
        scenarios=[s.name for s in scenarios],
        sample_sets=[
            [j.scenario.name, c.name, seed, j.key(c, seed)]
            for j in jobs
            for c in j.checkpoints
            for seed in j.seeds
        ],
        skipped=dict(unreadable),
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
    previous = read_evaluation(run.path) or {}
    before = int(previous.get("total_env_steps", 0)), float(previous.get("total_seconds", 0.0))
    if pending:
        # on record before the first rollout: an interrupted evaluation is never mistaken for the
        # previous, finished one (whose sample sets this one may be overwriting)
        write_evaluation(
            run.path, replace(report, total_env_steps=before[0], total_seconds=before[1], finished=False)
        )
        _run_jobs([job for job, _ in pending], config, steps_todo, report, console)
        remove_partials(samples_root(run.path))  # a Ray worker that died mid-job leaves one
    report.total_env_steps = report.env_steps + before[0]
    report.total_seconds = report.seconds + before[1]
    write_evaluation(run.path, report)
    for name, why in report.skipped.items():
        console.print(f"[yellow]skipped {name}[/]: {why}")
    if report.env_steps:
        console.print(
            f"evaluated {report.sample_sets_written} sample sets: {report.env_steps:,} env-steps in "
            f"{report.seconds:.0f} s ({report.env_steps_per_s:,.0f} env-steps/s)"
        )
    if report.candidates and not report.sample_sets_written + report.sample_sets_reused:
        raise RunError(nothing_evaluated(run.path, report.candidates, report.skipped))
    return report


def _readable(candidates) -> tuple[list, dict[str, str]]:
    """The candidates' references (path, name, iteration, content hash), and those whose file
    cannot be read with the reason: one missing or unreadable file never stops the others."""
    refs, unreadable = [], {}
    for c in candidates:
        try:
            refs.append(checkpoint_ref(c.path, c.iteration))
        except OSError as err:
            unreadable[c.name] = (
                f"cannot be read ({err.strerror or err}): restore {c.path.name}, or start the candidates "
                "after it with --from-iter"
            )
    return refs, unreadable


NEVER_EVALUATED = "never evaluated: run `postconv evaluate` again"
"""Why a candidate has no samples when its evaluation gave no other reason."""


def nothing_evaluated(run_dir: Path, candidates: list[str], skipped: dict[str, str]) -> str:
    """Why a run has no samples to rank, one line per candidate checkpoint."""
    reasons = "\n".join(f"  {name}: {skipped.get(name, NEVER_EVALUATED)}" for name in candidates)
    return (
        f"{run_dir}: none of the {len(candidates)} candidate checkpoints could be evaluated:\n{reasons}\n"
        "each reason says what to do; then run the same command again (finished sample sets are kept)"
    )


def _say_what_differs(pending, console: Console) -> None:
    """Before recomputing sample sets that are on disk but were made another way, say how."""
    from collections import Counter

    from postconv.evaluation.rollout import differences

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
    from postconv.evaluation import ray_eval

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
    from postconv.evaluation.rollout import Evaluator, env_steps_bar

    start = time.perf_counter()
    with (
        Evaluator(buffer_bytes=config.buffer_mb << 20) as evaluator,
        env_steps_bar(steps_todo) as bar,
    ):
        for job in jobs:
            bar.set_postfix_str(f"{job.scenario.name}: {', '.join(c.name for c in job.checkpoints)}")
            _add_result(report, evaluator.run(job, on_steps=bar.update))
    report.seconds = time.perf_counter() - start


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
    if evaluation.get("finished") is False:
        console.print(
            f"[yellow]the last evaluation did not finish[/] (interrupted?): ranking the sample sets it wrote; "
            f"run `postconv evaluate {run_dir}` to finish it (finished sample sets are kept)"
        )
    candidates = evaluation["candidates"]
    # skipped is per checkpoint: one skipped in a scenario may have samples in the others
    skipped = {c: r for c, r in evaluation["skipped"].items() if c in candidates}
    try:
        index = find_samples(run_dir, {(sc, c, seed): key for sc, c, seed, key in evaluation["sample_sets"]})
    except FileNotFoundError:
        if skipped:
            raise RunError(nothing_evaluated(run_dir, candidates, skipped)) from None
        raise
    if not any(c in index.iterations for c in candidates):
        raise RunError(nothing_evaluated(run_dir, candidates, skipped))
    out = run_dir / STAGE_DIR
    by_scenario = {}
    paths: list[Path] = []

    masks = Path(tempfile.mkdtemp(prefix="postconv-settled-"))  # shared by the streamed pools
    sample = sample_definition(_as_recorded(config, index))

    def ranked(scenarios: list[str]) -> SelectionResult:
        result, left_out = _select_samples(index, scenarios, candidates, config, console, masks)
        # why a checkpoint is missing: its evaluation's reason first, else what is missing
        why = {**left_out, **skipped}
        why |= {c: NEVER_EVALUATED for c in candidates if c not in index.iterations and c not in why}
        ranked_names = {c.name for c in result.checkpoints}
        return replace(
            result,
            skipped={c: r for c, r in why.items() if c not in ranked_names},
            scenarios=scenarios,
            sample=sample,
        )

    scenarios = [sc for sc in evaluation["scenarios"] if sc in index.scenarios]
    for scenario in sorted(set(evaluation["scenarios"]) - set(scenarios)):
        console.print(
            f"[yellow]no samples for scenario {scenario}[/]: its evaluation failed (evaluation.json lists "
            f"the skipped checkpoints and why); ranked without it: run `postconv evaluate {run_dir}` again to add it"
        )
    try:
        for scenario in scenarios:
            by_scenario[scenario] = ranked([scenario])
        pooled = ranked(scenarios)
    finally:
        shutil.rmtree(masks, ignore_errors=True)
    # written once every pool is ranked, so a failure leaves the previous results whole
    for scenario, result in by_scenario.items():
        paths += write_results(result, out / "by_scenario", stem=scenario)
    for stale in (out / "by_scenario").glob("*.*"):  # a scenario ranked before and not now
        if stale.suffix in (".json", ".csv") and stale.stem not in by_scenario:
            stale.unlink()
    paths = [*write_results(pooled, out), *paths]
    print_summary(pooled, tuple(paths[:2]), console)
    for name, result in by_scenario.items():
        console.print(
            f"  {name}: chosen {result.chosen}"
            + (f" (mean: {result.chosen_by_mean})" if result.chosen_by_mean != result.chosen else "")
        )
    console.print(f"per-scenario results in {out / 'by_scenario'}")
    if config.report:
        from postconv.review.publish import review

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
    if config.unit != "step" or size <= postconv.ranking.select.STREAM_SAMPLES:  # read now: tests lower it
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
        from postconv.sim2sim.config import Sim2SimConfig, StressConfig
        from postconv.sim2sim.judge import run_and_judge

        s2s = Sim2SimConfig(
            seed=config.seed, trust=config.trust, wandb=config.wandb and config.report,
            stress=StressConfig() if config.stress else None,
        )  # fmt: skip
        run_and_judge(run_dir, s2s, console)
    return results


__all__ = [
    "StageResults",
    "evaluate",
    "run_stage",
    "select_run",
]
