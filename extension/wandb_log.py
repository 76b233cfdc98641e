"""One Weights & Biases run per selection: config, a table, charts, the choice, an artifact.

Offline first: with no credentials (no ``WANDB_API_KEY``, no netrc entry) the run is
written offline under ``<run>/postconv/wandb`` and the ``wandb sync`` command is printed;
``WANDB_MODE`` decides when set. Everything logged here is already on disk, and a W&B
failure never fails the selection: it is reported and the rest goes on.

The run is tied to its training run: the same project when training logged to W&B
(rsl_rl's writer), the training run folder's name as the group, job type
``postconv-selection``.
"""

from __future__ import annotations

import json
import netrc
import os
from dataclasses import dataclass
from pathlib import Path

from postconv import __version__
from postconv.report import SelectionResult
from postconv.sample_store import atomic_write_text

JOB_TYPE = "postconv-selection"
RUN_RECORD = "wandb_run.json"
"""Under ``<run>/postconv/``: the selection's W&B run id, so outcomes join the same run."""
DEFAULT_PROJECT = "postconv"
SOURCE_RECORD = "wandb_source.json"
"""Under ``<run>/postconv/``, written by ``postconv fetch``: the W&B training run the folder came from."""


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
    p = ks.index(pooled.config.primary_k)
    columns = ["checkpoint", "iteration", "scenario", "status", "mean", "mean_rank"]
    columns += [f"worst_case_k{k:g}" for k in ks] + [f"rank_k{k:g}" for k in ks]
    columns += [f"ci_low_k{ks[p]:g}", f"ci_high_k{ks[p]:g}", f"p_best_k{ks[p]:g}", "p_best_mean"]
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
                ]
            )
    blank = [None] * (len(columns) - 4)
    for name, why in pooled.skipped.items():
        rows.append([name, iterations.get(name), "pooled", f"skipped: {why}", *blank])
    return columns, rows


ITERATION = "selection/iteration"
"""The x-axis of the per-checkpoint metrics: the training iteration of each checkpoint."""


def iteration_series(
    pooled: SelectionResult, by_scenario: dict[str, SelectionResult], iterations: dict[str, int]
) -> list[dict]:
    """One W&B row per ranked checkpoint, in training order, on the :data:`ITERATION` axis:
    the plain mean, the worst case at each k, the interval and P(best) at the primary k, the
    chosen checkpoint as a 0/1 series, and per scenario the mean and primary worst case, so
    that W&B draws them as native line panels against the training iteration."""
    ks = pooled.config.k
    p = ks.index(pooled.config.primary_k)
    primary = f"k{ks[p]:g}"
    rows = []
    for c in sorted(pooled.checkpoints, key=lambda c: iterations.get(c.name, -1)):
        if c.name not in iterations:
            continue
        row = {
            ITERATION: iterations[c.name],
            "selection/mean": c.mean,
            "selection/chosen": float(c.name == pooled.chosen),
        }
        row |= {f"selection/worst_case_k{k:g}": v for k, v in zip(ks, c.worst_case, strict=True)}
        if c.interval is not None:
            row[f"selection/ci_low_{primary}"], row[f"selection/ci_high_{primary}"] = c.interval[p]
        if c.p_best is not None:
            row[f"selection/p_best_{primary}"] = c.p_best[p]
        for scenario, result in by_scenario.items():
            if (same := next((x for x in result.checkpoints if x.name == c.name), None)) is not None:
                row[f"selection/{scenario}/mean"] = same.mean
                row[f"selection/{scenario}/worst_case_{primary}"] = same.worst_case[p]
        rows.append(row)
    return rows


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
) -> WandbRef:
    """Log the selection (results already on disk) to a new W&B run; return where it went."""
    import wandb

    source = fetched_from(run_dir)
    trained_in = source["project"] if source else training_project(agent_cfg)
    project = project or trained_in or DEFAULT_PROJECT
    mode = os.environ.get("WANDB_MODE") or ("online" if has_credentials() else "offline")
    out = run_dir / "postconv"
    run = wandb.init(
        project=project,
        entity=source["entity"] if source and project == trained_in else None,
        group=run_dir.name,
        job_type=JOB_TYPE,
        name=f"select-{run_dir.name}",
        dir=str(out),
        mode=mode,
        config={
            **config,
            "training_run": str(run_dir.resolve()),
            "training_logged_to_wandb": trained_in is not None,
            **({"training_wandb_run": source["path"]} if source else {}),
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
        run.define_metric(ITERATION)
        run.define_metric("selection/*", step_metric=ITERATION)
        for row in iteration_series(pooled, by_scenario, iterations):
            run.log(row)
        primary = f"worst_case_k{pooled.config.primary_k:g}"
        p = pooled.config.k.index(pooled.config.primary_k)
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
                "worst_case": chosen.worst_case[pooled.config.k.index(pooled.config.primary_k)],
                "mean": chosen.mean,
                "training_run": str(run_dir.resolve()),
                **({"training_wandb_run": source["path"]} if source else {}),
            }
            artifact = wandb.Artifact(f"policy-{run_dir.name}", type="model", metadata=metadata)
            for f in artifact_files:
                artifact.add_file(str(f))
            run.log_artifact(artifact, aliases=["chosen", pooled.chosen])
        url = run.url if mode == "online" else None
        local = Path(run.dir).parent
        record = {"id": run.id, "project": project, "group": run_dir.name, "mode": mode}
        atomic_write_text(out / RUN_RECORD, json.dumps(record))
    finally:
        run.finish()
    return WandbRef(project=project, group=run_dir.name, mode=mode, run_dir=local, url=url)


def log_outcomes(
    run_dir: Path,
    columns: list[str],
    rows: list[list],
    summary: dict,
    key: str = "outcomes/table",
    images: dict[str, Path] | None = None,
) -> WandbRef | None:
    """Add the outcomes' agreement table to the selection's W&B run (resumed by id); None if it has none."""
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
    try:
        run.log(
            {key: wandb.Table(columns=columns, data=rows)}
            | {name: wandb.Image(str(path)) for name, path in (images or {}).items()}
        )
        for key, value in summary.items():
            run.summary[key] = value
        local = Path(run.dir).parent
    finally:
        run.finish()
    return WandbRef(project=record["project"], group=record["group"], mode=mode, run_dir=local, url=None)
