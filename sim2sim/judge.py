"""The sim-to-sim outcomes judge the selection: per world, how well each predictor ranked.

The per-episode outcomes become ``outcomes.csv`` (:mod:`postconv.sim2sim.evaluate`);
:func:`postconv.review.outcomes.judge` scores the selection's plain mean and its worst case at
every k against each ``metric[world]`` column, as it does for real-robot outcomes. Here
the judgement is shown compactly: one row per world, the Spearman correlation of each
predictor with the world's outcome (``tracking_return`` by default: it counts a fall as
the reward not earned afterwards), and a chart of the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from postconv.review.outcomes import Judgement
from postconv.sim2sim.evaluate import POOLED

JUDGED_METRIC = "tracking_return"
"""The outcome the compact table and the chart show (all metrics are in agreement.csv)."""


def per_world(judgement: Judgement, metric: str = JUDGED_METRIC) -> tuple[list[str], list[str], np.ndarray]:
    """(worlds, predictors, (W, P) Spearman) for ``metric`` in every world and pooled."""
    worlds, predictors, values = [], [], {}
    for r in judgement.rows:
        name, _, rest = r.metric.partition("[")
        if name != metric:
            continue
        world = rest[:-1]
        if world not in worlds:
            worlds.append(world)
        if r.predictor not in predictors:
            predictors.append(r.predictor)
        values[world, r.predictor] = r.spearman
    table = np.array([[values.get((w, p), np.nan) for p in predictors] for w in worlds])
    return worlds, predictors, table


def print_per_world(judgement: Judgement, console: Console, metric: str = JUDGED_METRIC) -> None:
    worlds, predictors, table = per_world(judgement, metric)
    out = Table(title=f"Spearman of each predictor with the sim-to-sim {metric}, per world")
    out.add_column("world")
    for p in predictors:
        out.add_column(p, justify="right")
    out.add_column("best k")
    for world, row in zip(worlds, table, strict=True):
        best = judgement.best.get(f"{metric}[{world}]")
        out.add_row(
            escape(world) if world != POOLED else "[bold]all worlds[/]",
            *("-" if np.isnan(v) else f"{v:+.2f}" for v in row),
            "" if best is None else f"{best['k']:g}",
        )
    console.print(out)


def spearman_chart(judgement: Judgement, path: Path, metric: str = JUDGED_METRIC) -> Path:
    """Rank correlation against k per world (the mean drawn at k = 0)."""
    from postconv.review.figures import pyplot, save_figure

    worlds, predictors, table = per_world(judgement, metric)
    ks = [0.0 if p == "mean" else float(p.removeprefix("k=")) for p in predictors]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for world, row in zip(worlds, table, strict=True):
        pooled = world == POOLED
        ax.plot(ks, row, marker="o", lw=3 if pooled else 1, color="black" if pooled else None,
                alpha=1 if pooled else 0.6, label="all worlds" if pooled else world)  # fmt: skip
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xlabel("k (0: the plain mean)")
    ax.set_ylabel(f"Spearman with {metric}")
    ax.set_ylim(-1.05, 1.05)
    ax.set_title("Sim-to-sim: does the ranking predict the shifted worlds?")
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    return save_figure(fig, path)


def run_and_judge(run_dir: str | Path, config, console: Console | None = None) -> Judgement:
    """``postconv sim2sim``: replay (:func:`~postconv.sim2sim.evaluate.run_sim2sim`), then judge the
    selection by the outcomes, print it, chart it and add it to the report and W&B."""
    from postconv.console import wide_console
    from postconv.sim2sim.evaluate import run_sim2sim

    console = console or wide_console()
    result = run_sim2sim(Path(run_dir), config, console)
    return judge_and_publish(run_dir, result, config, console)


def judge_and_publish(run_dir: str | Path, result, config, console: Console) -> Judgement:
    """Judge the selection of ``run_dir`` by a sim2sim result; print, chart, report and log it."""
    from postconv.review import outcomes as oc
    from postconv.sim2sim.evaluate import lower_is_better, outcome_columns
    from postconv.sim2sim.stress import margins_heatmap
    from postconv.storage.sample_store import STAGE_DIR

    run_dir = Path(run_dir)
    columns = outcome_columns(result)
    judgement = oc.judge(run_dir, result.paths["outcomes"], lower_is_better(columns), source="sim2sim")
    print_per_world(judgement, console)
    report = run_dir / STAGE_DIR / "report"
    media = {"sim2sim/spearman_vs_k": spearman_chart(judgement, report / "sim2sim.png")}
    shown = {f"{m}[{POOLED}]" for m in ("survived", JUDGED_METRIC)}
    if result.margins is not None:
        media["sim2sim/margins"] = margins_heatmap(result.margins, report / "margins.png", result.marks)
        shown |= {result.margins.column(k) for k in result.margins.kinds}
    else:  # a heat map of an earlier search would otherwise stay in every rewrite of the report
        (report / "margins.png").unlink(missing_ok=True)
    _video_section(report, result.video)
    if result.video is not None:
        media["sim2sim/video"] = result.video.mp4
    oc.publish(run_dir, judgement, console, wandb=config.wandb, metrics=shown, images=media)
    return judgement


def _video_section(report: Path, video) -> None:
    """The picks' video as a section of every later rewrite of the report (removed when there is none)."""
    from postconv.review.html_report import SECTIONS_DIR, video_html

    path = report / SECTIONS_DIR / "sim2sim_video.html"
    if video is None:
        path.unlink(missing_ok=True)
        return
    fell = ", ".join(
        f"{name} {'stood' if t is None else f'fell at {t:.1f} s'}" for name, t in video.fell_at.items()
    )
    caption = (
        f"The picks ({'; '.join(f'{p.name}: ' + ' + '.join(p.roles) for p in video.picks)}) in the world {video.world}, "
        f"the same episode (#{video.episode}: initial state, pushes and noise) for each: {fell}."
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "<h2>Sim-to-sim: the picks side by side</h2>" + video_html(video.mp4, video.poster, caption)
    )
