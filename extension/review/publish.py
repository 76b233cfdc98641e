"""What people look at after a selection: charts, an HTML report, the exported policy, W&B.

Runs after the results are on disk (``selection.json`` / ``.csv``). Everything here lands
in ``<run>/postconv/report/`` first; the W&B upload comes last, and its failure is
reported, never raised.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console

from postconv.ranking.baselines import BASELINES_FILE, baselines_of, write_baselines
from postconv.ranking.result import SelectionResult
from postconv.review import figures
from postconv.review.console_report import rules_line
from postconv.storage.checkpoints import open_run, training_curve
from postconv.storage.sample_store import STAGE_DIR, SampleIndex, checkpoint_columns


@dataclass(frozen=True)
class ReviewFiles:
    """The files a review wrote."""

    figures: list[Path]
    html: Path
    policy: dict[str, Path]
    wandb: object | None


def review(
    run_dir: Path,
    index: SampleIndex,
    pooled: SelectionResult,
    by_scenario: dict[str, SelectionResult],
    candidates: dict[str, int],
    stage_config,
    console: Console,
) -> ReviewFiles:
    from postconv.review.html_report import write_html_report

    out = run_dir / STAGE_DIR / "report"
    run = open_run(run_dir)
    made = [
        figures.estimates_chart(pooled, out / "estimates.png"),
        figures.worst_case_vs_k_chart(pooled, out / "worst_case_vs_k.png"),
        figures.rank_change_chart(pooled, out / "rank_change.png"),
    ]
    if (curve := training_curve(run)) is not None:
        made.append(
            figures.training_curve_chart(*curve, candidates, pooled.chosen, out / "training_curve.png")
        )
    psi, columns, names = checkpoint_columns(
        index, pooled.chosen, pooled.scenarios, stage_config.psi_terms, stage_config.unit
    )
    k = pooled.config.primary_k
    tilt = figures.tilt_of(psi, columns, names, k, pooled.config.divergence, pooled.sense)
    made.append(figures.tilt_chart(tilt, pooled.chosen, k, out / "tilt.png"))
    from postconv.storage.evaluation_record import read_evaluation

    evaluation = read_evaluation(run_dir) or {}
    rules = baselines_of(curve, index, pooled, candidates)
    write_baselines(out / BASELINES_FILE, rules, pooled)
    console.print(rules_line(rules.picks(pooled)))
    html = write_html_report(
        out / "report.html",
        run_dir,
        pooled,
        by_scenario,
        made,
        candidates=evaluation.get("candidates_reason"),
        baselines=rules,
    )
    console.print(f"report: {html}")
    policy = _export_chosen(run, pooled, out, stage_config.trust, console)
    ref = None
    if stage_config.wandb:
        ref = _log_wandb(
            run, pooled, by_scenario, candidates, made, stage_config, policy, console, evaluation, rules
        )
    return ReviewFiles(figures=made, html=html, policy=policy, wandb=ref)


def _export_chosen(run, pooled: SelectionResult, out: Path, trust: bool, console: Console) -> dict[str, Path]:
    from postconv.evaluation.policy import load_actor
    from postconv.review.export import export_policy

    chosen = pooled.chosen
    checkpoint = next(c for c in run.checkpoints if c.name == chosen)
    try:
        actor = load_actor(checkpoint.path, run.agent_cfg, trust=trust)
        paths = export_policy(actor, out, stem=f"{chosen}_policy")
    except Exception as err:  # the results stand without the export; say why it is missing
        console.print(f"[yellow]policy export failed[/]: {type(err).__name__}: {err}")
        return {}
    files = f"{paths['torchscript'].name}, {paths['onnx'].name} (normalizer included)"
    try:
        paths["card"] = _write_card(run, checkpoint, pooled, actor, paths, out)
        files += (
            f"; its interface (observation terms, joint order, defaults, gains, rate): {paths['card'].name}"
        )
    except Exception as err:  # the exports stand without their card; say why it is missing
        console.print(f"[yellow]policy card not written[/]: {type(err).__name__}: {err}")
    console.print(f"exported {chosen}: {files}")
    return {"checkpoint": checkpoint.path, **paths}


def _write_card(run, checkpoint, pooled: SelectionResult, actor, paths: dict[str, Path], out: Path) -> Path:
    from postconv.review.policy_card import policy_card, write_policy_card

    card = policy_card(run.path, run.task, run.agent_cfg, actor.obs_dim, actor.act_dim)
    identity = {
        "checkpoint": checkpoint.name,
        "iteration": checkpoint.iteration,
        "run": str(run.path),
        "chosen_because": pooled.chosen_because,
        "files": {kind: path.name for kind, path in paths.items()},
    }
    return write_policy_card(out / f"{checkpoint.name}_policy.json", card, identity)


def _log_wandb(
    run, pooled, by_scenario, candidates, made, stage_config, policy, console, evaluation: dict, baselines
):
    try:
        from postconv.dashboard.log import log_selection
    except ImportError:
        console.print("[yellow]W&B skipped[/]: the wandb package is not installed (pip install wandb)")
        return None
    config = {
        "task": run.task,
        "scenarios": pooled.scenarios,
        "k": list(pooled.config.k),
        "primary_k": pooled.config.primary_k,
        "divergence": pooled.config.divergence,
        "pick": pooled.config.pick,
        "pick_p": pooled.config.pick_p,
        "samples_per_checkpoint": pooled.samples_per_checkpoint,
        "sample": pooled.sample,
        "candidates": evaluation.get("candidates_reason"),
        "converged": evaluation.get("converged"),
        "seed": stage_config.seed,
        "stage": {k: v for k, v in asdict(stage_config).items() if k != "selection"},
    }
    try:
        ref = log_selection(
            run.path, run.agent_cfg, pooled, by_scenario, candidates, made, config,
            [Path(p) for p in policy.values()], project=stage_config.wandb_project, baselines=baselines,
        )  # fmt: skip
    except Exception as err:  # the selection is on disk; W&B trouble must not sink it
        console.print(f"[yellow]W&B logging failed[/] ({type(err).__name__}: {err}); the results are on disk")
        return None
    if ref.training_error:
        console.print(f"[yellow]the training's own W&B run was not updated[/] ({ref.training_error})")
    if ref.mode == "offline":
        console.print(f"W&B run written offline; upload it with: wandb sync {ref.run_dir.resolve()}")
        if ref.training_dir is not None:
            console.print(f"the selection in the training's own run: wandb sync {ref.training_dir.resolve()}")
    else:
        console.print(f"W&B: {ref.url}")
        if ref.training_dir is not None:
            console.print("the selection's series are in the training's own run too (postconv/* panels)")
    return ref
