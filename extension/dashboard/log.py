"""One Weights & Biases run per selection: config, a table, charts, the choice, an artifact.

Offline first: with no credentials (no ``WANDB_API_KEY``, no netrc entry) the run is
written offline under ``<run>/postconv/wandb`` and the ``wandb sync`` command is printed;
``WANDB_MODE`` decides when set. Everything logged here is already on disk, and a W&B
failure never fails the selection: it is reported and the rest goes on.

The run is tied to its training run: the same project when training logged to W&B
(rsl_rl's writer), the training run folder's name as the group, job type
``postconv-selection``. When the training's own W&B run is known (postconv's log writer
records it; ``postconv fetch`` records the run it came from), the per-checkpoint series are
logged into that run as well, under ``postconv/`` on a ``postconv/iteration`` axis, so one
page shows training and selection; each run names the other (config and summary).
"""

from __future__ import annotations

import json
import netrc
import os
from dataclasses import dataclass
from pathlib import Path

from postconv import __version__
from postconv.ranking.baselines import Baselines
from postconv.ranking.result import SelectionResult
from postconv.storage.sample_store import atomic_write_text

JOB_TYPE = "postconv-selection"
RUN_RECORD = "wandb_run.json"
"""Under ``<run>/postconv/``: the selection's W&B run id, so outcomes join the same run."""
DEFAULT_PROJECT = "postconv"
SOURCE_RECORD = "wandb_source.json"
"""Under ``<run>/postconv/``, written by ``postconv fetch``: the W&B training run the folder came from."""
TRAINING_RECORD = "wandb_training.json"
"""Under ``<run>/postconv/``, written by postconv's log writer (backend wandb): the training's W&B run."""
TRAINING_PREFIX = "postconv"
"""Key prefix of the selection's series inside the training run (axis ``postconv/iteration``)."""


@dataclass(frozen=True)
class WandbRef:
    """Where the selection's W&B run went."""

    project: str
    group: str
    mode: str
    """"online" or "offline"."""
    run_dir: Path | None
    """The local run folder (the one to `wandb sync` when offline)."""
    url: str | None
    training_dir: Path | None = None
    """The local folder of what was logged into the training's own run (None: not known)."""
    training_error: str | None = None
    """Why logging into the training's own run failed, if it did (the rest stands)."""


def has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def training_project(agent_cfg: dict) -> str | None:
    """The W&B project the training logged to, if it did (rsl_rl's writer, or ours with backend wandb)."""
    logger = agent_cfg.get("logger")
    if logger == "wandb":
        return agent_cfg.get("wandb_project")
    if isinstance(logger, dict) and logger.get("class_name") == "WandbLogWriter":  # rsl_rl's own writer
        return logger.get("project_name") or agent_cfg.get("wandb_project")
    if isinstance(logger, dict) and logger.get("backend") == "wandb":  # ours, keeping W&B (see postconv.hook)
        return (logger.get("backend_cfg") or {}).get("project_name") or os.environ.get(
            "WANDB_PROJECT", "isaaclab"
        )
    return None


def record_training_run(run_dir: Path) -> None:
    """Write :data:`TRAINING_RECORD` for the active W&B run (the training's), if any, with
    the last history step it logged so far (called again when training ends)."""
    import wandb

    if wandb.run is None:
        return
    record = {
        "id": wandb.run.id, "project": wandb.run.project, "entity": wandb.run.entity or None,
        "last_step": int(wandb.run.step),  # the step of its last row
    }  # fmt: skip
    atomic_write_text(Path(run_dir) / "postconv" / TRAINING_RECORD, json.dumps(record))


def _next_steps(path: Path, record: dict, rows: int, floor: int = -1) -> range:
    """History steps for ``rows`` rows appended to a resumed run, after every step it has
    (``last_step`` in its record, or ``floor``), and the record moved past them. Explicit
    steps keep a resumed segment from overlapping the run's history when it is synced."""
    first = max(int(record.get("last_step", -1)), floor) + 1
    # the next logging (outcomes after the selection) continues after these rows
    atomic_write_text(path, json.dumps({**record, "last_step": first + rows - 1}))
    return range(first, first + rows)


def training_run(run_dir: Path) -> dict | None:
    """The W&B run the training logged to (id, project, entity), if known: recorded by
    postconv's log writer, or the run ``postconv fetch`` rebuilt the folder from."""
    try:
        return json.loads((run_dir / "postconv" / TRAINING_RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        pass
    if (source := fetched_from(run_dir)) is not None:
        return {"id": source["path"].split("/")[-1], "project": source["project"], "entity": source["entity"]}
    return None


def run_path(record: dict) -> str:
    """``entity/project/id`` (``project/id`` without an entity): how W&B names a run."""
    return "/".join(p for p in (record.get("entity"), record["project"], record["id"]) if p)


def fetched_from(run_dir: Path) -> dict | None:
    """The W&B training run (entity, project, path) a folder was fetched from, if it was."""
    record = run_dir / "postconv" / SOURCE_RECORD
    return json.loads(record.read_text()) if record.is_file() else None


def table_rows(
    pooled: SelectionResult, by_scenario: dict[str, SelectionResult], iterations: dict[str, int]
) -> tuple[list[str], list[list]]:
    """Columns and rows of the W&B table: one row per checkpoint and scenario ("pooled" too),
    skipped checkpoints with their reason."""
    ks = pooled.config.k
    p = pooled.config.primary_index
    columns = ["checkpoint", "iteration", "scenario", "status", "mean", "mean_rank"]
    columns += [f"worst_case_k{k:g}" for k in ks] + [f"rank_k{k:g}" for k in ks]
    columns += [f"ci_low_k{ks[p]:g}", f"ci_high_k{ks[p]:g}", f"p_best_k{ks[p]:g}", "p_best_mean"]
    columns += [f"p_beats_last_k{ks[p]:g}", "p_beats_last_mean"]
    rows = []
    for scenario, result in [("pooled", pooled), *by_scenario.items()]:
        for c in result.checkpoints:
            interval = c.interval[p] if c.interval is not None else [None, None]
            rows.append(
                [
                    c.name,
                    iterations.get(c.name),
                    scenario,
                    "ranked",
                    c.mean,
                    c.mean_rank,
                    *c.worst_case,
                    *c.rank,
                    *interval,
                    c.p_best[p] if c.p_best else None,
                    c.p_best_mean,
                    c.p_beats_last[p] if c.p_beats_last else None,
                    c.p_beats_last_mean,
                ]
            )
    blank = [None] * (len(columns) - 4)
    for name, why in pooled.skipped.items():
        rows.append([name, iterations.get(name), "pooled", f"skipped: {why}", *blank])
    return columns, rows


ITERATION = "selection/iteration"
"""The x-axis of the per-checkpoint metrics: the training iteration of each checkpoint."""


def _log_series(run, prefix: str, axis: str, rows, steps=None) -> None:
    """Rows of ``prefix/*`` series plotted against ``axis`` (native W&B panels); ``steps``:
    the history step of each row (None: the run's next ones)."""
    run.define_metric(axis)
    run.define_metric(f"{prefix}/*", step_metric=axis)
    steps = iter(steps) if steps is not None else None
    for row in rows:
        if steps is None:
            run.log(row)
        else:
            run.log(row, step=next(steps))


def iteration_series(
    pooled: SelectionResult,
    by_scenario: dict[str, SelectionResult],
    iterations: dict[str, int],
    prefix: str = "selection",
    baselines: Baselines | None = None,
) -> list[dict]:
    """One W&B row per ranked checkpoint, in training order, on the ``<prefix>/iteration``
    axis: the plain mean, the worst case at each k, the interval and P(best) at the primary
    k, the chosen checkpoint as a 0/1 series, per scenario the mean and primary worst case,
    and with ``baselines`` the falls in the samples and the training reward, so that W&B
    draws them as native line panels against the training iteration."""
    ks = pooled.config.k
    beside = {}
    if baselines is not None:
        header, table = baselines.rows(pooled)
        at = {name: header.index(name) for name in ("train_reward", "sim_falls")}
        beside = {row[0]: {key: row[i] for key, i in at.items() if row[i] is not None} for row in table}
    p = pooled.config.primary_index
    primary = f"k{ks[p]:g}"
    rows = []
    for c in sorted(pooled.checkpoints, key=lambda c: iterations.get(c.name, -1)):
        if c.name not in iterations:
            continue
        row = {
            f"{prefix}/iteration": iterations[c.name],
            f"{prefix}/mean": c.mean,
            f"{prefix}/chosen": float(c.name == pooled.chosen),
        }
        row |= {f"{prefix}/worst_case_k{k:g}": v for k, v in zip(ks, c.worst_case, strict=True)}
        if c.interval is not None:
            row[f"{prefix}/ci_low_{primary}"], row[f"{prefix}/ci_high_{primary}"] = c.interval[p]
        if c.p_best is not None:
            row[f"{prefix}/p_best_{primary}"] = c.p_best[p]
        if c.p_beats_last is not None:
            row[f"{prefix}/p_beats_last_{primary}"] = c.p_beats_last[p]
        for scenario, result in by_scenario.items():
            if (same := next((x for x in result.checkpoints if x.name == c.name), None)) is not None:
                row[f"{prefix}/{scenario}/mean"] = same.mean
                row[f"{prefix}/{scenario}/worst_case_{primary}"] = same.worst_case[p]
        row |= {f"{prefix}/{key}": v for key, v in beside.get(c.name, {}).items()}
        rows.append(row)
    return rows


def outcome_series(
    means: dict[str, dict[str, float]], iterations: dict[str, int], source: str, prefix: str = "selection"
) -> list[dict]:
    """Outcomes on the same axis as the estimates: one row per checkpoint with an outcome,
    ``<prefix>/<source>/<metric>`` its mean over trials, as recorded (a lower-is-better metric
    is not flipped: the panel shows what each checkpoint really did)."""
    rows = []
    for name in sorted({c for per in means.values() for c in per if c in iterations}, key=iterations.get):
        row = {f"{prefix}/iteration": iterations[name]}
        row |= {f"{prefix}/{source}/{m}": per[name] for m, per in means.items() if name in per}
        rows.append(row)
    return rows


def _mode() -> str:
    return os.environ.get("WANDB_MODE") or ("online" if has_credentials() else "offline")


def log_into_training_run(run_dir: Path, rows: list[dict], summary: dict) -> Path | None:
    """Add rows on the ``postconv/iteration`` axis (and summary keys) to the training's own W&B
    run (:func:`training_run`), resumed by id; the local folder written, or None if the
    training's run is not known. Offline, ``wandb sync`` of that folder adds them to it."""
    import wandb

    record = training_run(run_dir)
    if record is None:
        return None
    run = wandb.init(
        id=record["id"], project=record["project"], entity=record.get("entity"), resume="allow",
        dir=str(run_dir / "postconv"), mode=_mode(), settings=wandb.Settings(silent=True, console="off"),
    )  # fmt: skip
    axis = f"{TRAINING_PREFIX}/iteration"
    # rsl_rl logs the training at step = iteration: past the last one the series are appended
    last_iteration = max((int(row[axis]) for row in rows), default=-1)
    steps = _next_steps(run_dir / "postconv" / TRAINING_RECORD, record, len(rows), last_iteration)
    try:
        _log_series(run, TRAINING_PREFIX, axis, rows, steps)
        for key, value in summary.items():
            run.summary[key] = value
        return Path(run.dir).parent
    finally:
        run.finish()


def log_selection(
    run_dir: Path,
    agent_cfg: dict,
    pooled: SelectionResult,
    by_scenario: dict[str, SelectionResult],
    iterations: dict[str, int],
    figures: list[Path],
    config: dict,
    artifact_files: list[Path],
    project: str | None = None,
    baselines: Baselines | None = None,
) -> WandbRef:
    """Log the selection (results already on disk) to a new W&B run; return where it went.
    ``baselines``: what the rules a user has without the worst case pick, as a table, a
    summary key per rule (``picks/<rule>``) and per-checkpoint series."""
    import wandb

    trained = training_run(run_dir)
    trained_in = trained["project"] if trained else training_project(agent_cfg)
    project = project or trained_in or DEFAULT_PROJECT
    mode = _mode()
    out = run_dir / "postconv"
    from wandb.sdk.lib.runid import generate_id

    run = wandb.init(
        # a new run of its own: a WANDB_RUN_ID or WANDB_RESUME left from pinning the training's
        # run (Isaac Lab supports it) must not make the selection resume the training run
        id=generate_id(),
        resume="never",
        project=project,
        entity=trained.get("entity") if trained and project == trained_in else None,
        group=run_dir.name,
        job_type=JOB_TYPE,
        name=f"select-{run_dir.name}",
        dir=str(out),
        mode=mode,
        config={
            **config,
            "training_run": str(run_dir.resolve()),
            "training_logged_to_wandb": trained_in is not None,
            **({"training_wandb_run": run_path(trained)} if trained else {}),
            "postconv_version": __version__,
        },
        settings=wandb.Settings(silent=True, console="off"),
    )
    try:
        columns, rows = table_rows(pooled, by_scenario, iterations)
        run.log(
            {
                "selection/table": wandb.Table(columns=columns, data=rows),
                **{f"charts/{f.stem}": wandb.Image(str(f)) for f in figures},
            }
        )
        # native panels: per-checkpoint series against the training iteration, and charts
        # W&B draws itself (zoom, hover) from the pooled table; the PNGs above are extras
        _log_series(
            run,
            "selection",
            ITERATION,
            iteration_series(pooled, by_scenario, iterations, baselines=baselines),
        )
        if baselines is not None:
            header, table = baselines.rows(pooled)
            run.log({"selection/baselines": wandb.Table(columns=header, data=table)})
            for pick in baselines.picks(pooled):
                if pick.checkpoint is not None:  # no training curve: that rule picks nothing
                    run.summary[f"picks/{pick.key}"] = pick.checkpoint
        primary = f"worst_case_k{pooled.config.primary_k:g}"
        p = pooled.config.primary_index
        points = wandb.Table(
            columns=["checkpoint", "iteration", "mean", primary],
            data=[[c.name, iterations.get(c.name), c.mean, c.worst_case[p]] for c in pooled.checkpoints],
        )
        run.log(
            {
                "panels/mean_vs_worst_case": wandb.plot.scatter(
                    points,
                    "mean",
                    primary,
                    title=f"Plain mean against the worst case at k = {pooled.config.primary_k:g}",
                ),
                "panels/worst_case_by_checkpoint": wandb.plot.bar(
                    points, "checkpoint", primary, title=f"Worst case at k = {pooled.config.primary_k:g}"
                ),
            }
        )
        ks = pooled.config.k
        run.summary["chosen"] = pooled.chosen
        run.summary["chosen_by_mean"] = pooled.chosen_by_mean
        run.summary["chosen_by_worst_case"] = pooled.chosen_by_worst_case
        run.summary["chosen_because"] = pooled.chosen_because
        run.summary["primary_k"] = pooled.config.primary_k
        for j, k in enumerate(ks):
            best = min(pooled.checkpoints, key=lambda c, j=j: c.rank[j])
            run.summary[f"chosen_k{k:g}"] = best.name
        for scenario, result in by_scenario.items():
            run.summary[f"chosen/{scenario}"] = result.chosen
        run.summary["skipped"] = len(pooled.skipped)
        if artifact_files:
            chosen = next(c for c in pooled.checkpoints if c.name == pooled.chosen)
            metadata = {
                "checkpoint": pooled.chosen,
                "iteration": iterations.get(pooled.chosen),
                "k": pooled.config.primary_k,
                "divergence": pooled.config.divergence,
                "pick": pooled.config.pick,
                "chosen_because": pooled.chosen_because,
                "worst_case": chosen.worst_case[pooled.config.primary_index],
                "mean": chosen.mean,
                "training_run": str(run_dir.resolve()),
                **({"training_wandb_run": run_path(trained)} if trained else {}),
            }
            artifact = wandb.Artifact(f"policy-{run_dir.name}", type="model", metadata=metadata)
            for f in artifact_files:
                artifact.add_file(str(f))
            run.log_artifact(artifact, aliases=["chosen", pooled.chosen])
        url = run.url if mode == "online" else None
        local = Path(run.dir).parent
        selection_path = run_path({"entity": run.entity or None, "project": project, "id": run.id})
        record = {
            "id": run.id,
            "project": project,
            "group": run_dir.name,
            "mode": mode,
            "iterations": iterations,
            "last_step": int(run.step),  # the step of its last row: outcomes come after it
        }
        atomic_write_text(out / RUN_RECORD, json.dumps(record))
    finally:
        run.finish()
    # the same series in the training's own run, beside its curves, and the two runs linked
    chosen = next(c for c in pooled.checkpoints if c.name == pooled.chosen)
    in_training, trouble = _guarded(
        log_into_training_run,
        run_dir,
        iteration_series(pooled, by_scenario, iterations, prefix=TRAINING_PREFIX),
        {
            f"{TRAINING_PREFIX}/chosen_checkpoint": pooled.chosen,  # not .../chosen, the 0/1 series
            f"{TRAINING_PREFIX}/chosen_iteration": iterations.get(pooled.chosen),
            f"{TRAINING_PREFIX}/chosen_worst_case": chosen.worst_case[pooled.config.primary_index],
            f"{TRAINING_PREFIX}/selection_run": selection_path,
        },
    )
    return WandbRef(
        project=project, group=run_dir.name, mode=mode, run_dir=local, url=url, training_dir=in_training,
        training_error=trouble,
    )  # fmt: skip


def _guarded(log, *args) -> tuple[Path | None, str | None]:
    """Run a logging into the training's run; its failure is returned, so the logging that
    already succeeded (the selection's own run) is still reported."""
    try:
        return log(*args), None
    except Exception as err:
        return None, f"{type(err).__name__}: {err}"


def _media(wandb, path: Path):
    """A chart or a video for the W&B run, by its file's suffix."""
    if path.suffix == ".mp4":
        return wandb.Video(str(path), format="mp4")
    return wandb.Image(str(path))


def log_outcomes(
    run_dir: Path,
    columns: list[str],
    rows: list[list],
    summary: dict,
    key: str = "outcomes/table",
    images: dict[str, Path] | None = None,
    means: dict[str, dict[str, float]] | None = None,
) -> WandbRef | None:
    """Add the outcomes' agreement table (and ``images``: W&B key -> PNG chart or MP4 video) to the
    selection's W&B run (resumed by id); None if it has none. ``means`` (metric -> checkpoint -> outcome) also go on the iteration axis there
    and in the training's own run, beside the estimates they judge."""
    import wandb

    out = run_dir / "postconv"
    try:
        record = json.loads((out / RUN_RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    mode = os.environ.get("WANDB_MODE") or record["mode"]
    run = wandb.init(
        id=record["id"], project=record["project"], group=record["group"], job_type=JOB_TYPE, dir=str(out),
        mode=mode, resume="allow", settings=wandb.Settings(silent=True, console="off"),
    )  # fmt: skip
    source = key.split("/")[0]
    iterations = record.get("iterations", {})
    series = outcome_series(means, iterations, source) if means else []
    steps = iter(_next_steps(out / RUN_RECORD, record, 1 + len(series)))
    try:
        run.log(
            {key: wandb.Table(columns=columns, data=rows)}
            | {name: _media(wandb, path) for name, path in (images or {}).items()},
            step=next(steps),
        )
        if series:
            _log_series(run, "selection", ITERATION, series, steps)
        for name, value in summary.items():
            run.summary[name] = value
        local = Path(run.dir).parent
    finally:
        run.finish()
    in_training, trouble = None, None
    if series:
        in_training, trouble = _guarded(
            log_into_training_run,
            run_dir,
            outcome_series(means, iterations, source, prefix=TRAINING_PREFIX),
            {},
        )
    return WandbRef(
        project=record["project"], group=record["group"], mode=mode, run_dir=local, url=None,
        training_dir=in_training, training_error=trouble,
    )  # fmt: skip
