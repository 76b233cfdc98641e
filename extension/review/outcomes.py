"""Real-robot outcomes close the loop: how well did each predictor rank the checkpoints?

The user's CSV holds one row per trial: a ``checkpoint`` column (names as in the
selection, e.g. ``model_1450``), optionally a ``trial`` column, and one numeric column per
metric (larger is better; name a metric in ``lower_is_better`` to flip it; an empty cell is a
trial without that metric). Each metric is averaged over its trials per checkpoint, then
compared with the plain simulation mean and with the worst case at every k of the selection:
Spearman, Kendall, top-1 regret and regret@3, and the k that best predicts by leave-one-out
(:func:`postconv.selection.best_k`); and each pick (the recommended checkpoint, the worst
case's, the mean's, the last one) is judged by what it did, where it was tried.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from postconv.ranking.result import SelectionResult
from postconv.selection import agreement, best_k
from postconv.storage.sample_store import STAGE_DIR, atomic_write_text


@dataclass(frozen=True)
class Outcomes:
    """Real outcomes per metric and checkpoint (means over trials)."""

    metrics: tuple[str, ...]
    means: dict[str, dict[str, float]]
    """metric -> checkpoint -> mean over its trials, as recorded."""
    trials: dict[str, int]
    """checkpoint -> its rows in the file (a metric may leave some of them empty)."""
    lower_is_better: tuple[str, ...] = ()
    """The metrics where less is better."""

    def better(self, metric: str) -> dict[str, float]:
        """``metric``'s means with larger better: lower-is-better metrics negated."""
        sign = -1.0 if metric in self.lower_is_better else 1.0
        return {c: sign * v for c, v in self.means[metric].items()}


def read_outcomes(
    path: Path,
    checkpoints: list[str],
    lower_is_better: tuple[str, ...] = (),
    skipped: dict[str, str] | None = None,
) -> Outcomes:
    """Read and check the outcomes CSV; every bad row is named in one error. ``skipped``: the
    selection's checkpoints that could not be ranked, with the reason (named when a row has one)."""
    skipped = skipped or {}
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a spreadsheet's byte-order mark is no header
    except OSError as err:
        raise FileNotFoundError(f"{path}: cannot read the outcomes file ({err})") from err
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "checkpoint" not in header:
        raise ValueError(
            f"{path}: no 'checkpoint' column; the header is {header}. Write checkpoint,<metric>,..."
        )
    metrics = tuple(h for h in header if h not in ("checkpoint", "trial"))
    if not metrics:
        raise ValueError(f"{path}: no metric columns besides checkpoint/trial; add one, e.g. success_rate")
    unknown = sorted(set(lower_is_better) - set(metrics))
    if unknown:
        raise ValueError(
            f"{path}: lower-is-better metrics {unknown} are not columns of the file ({list(metrics)})"
        )
    known, problems, seen, rows = set(checkpoints), [], {}, {}
    values: dict[str, dict[str, list[float]]] = {m: {} for m in metrics}
    for line, row in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        name = row.get("checkpoint", "")
        if name not in known:
            why = f" ({skipped[name]})" if name in skipped else f" (ranked: {', '.join(checkpoints)})"
            problems.append(f"line {line}: checkpoint {name!r} was not ranked{why}")
            continue
        if row.get("trial"):
            key = (name, row["trial"])
            if key in seen:
                problems.append(
                    f"line {line}: checkpoint {name!r} trial {row['trial']!r} repeats line {seen[key]}"
                )
                continue
            seen[key] = line
        rows[name] = rows.get(name, 0) + 1
        for metric in metrics:
            cell = row.get(metric, "")
            if cell == "":
                continue  # this trial has no value for the metric
            try:
                value = float(cell)
            except ValueError:
                problems.append(
                    f"line {line}: {metric} = {cell!r} is not a number (write a number, or leave the cell empty)"
                )
                continue
            if not math.isfinite(value):
                problems.append(f"line {line}: {metric} = {cell!r} is not finite")
                continue
            values[metric].setdefault(name, []).append(value)
    if problems:
        raise ValueError(f"{path}: {len(problems)} bad rows:\n  " + "\n  ".join(problems))
    if len(rows) < 2:
        raise ValueError(
            f"{path}: outcomes for {len(rows)} checkpoint(s); comparing rankings needs at least 2"
        )
    few = [f"{m} ({len(values[m])})" for m in metrics if len(values[m]) < 2]
    if few:
        raise ValueError(
            f"{path}: metrics with values for fewer than 2 checkpoints: {', '.join(few)}; fill them in "
            "or leave those columns out"
        )
    means = {m: {c: float(np.mean(v)) for c, v in values[m].items()} for m in metrics}
    return Outcomes(metrics=metrics, means=means, trials=rows, lower_is_better=tuple(lower_is_better))


@dataclass(frozen=True)
class PredictorScore:
    metric: str
    predictor: str
    """"mean" or "k=<k>"."""
    spearman: float
    kendall: float
    regret_1: float
    regret_3: float | None
    checkpoints: int


def score(selection: SelectionResult, outcomes: Outcomes) -> tuple[list[PredictorScore], dict[str, dict]]:
    """Agreement of the mean and of each k with every metric, and the best k per metric."""
    ks = selection.config.k
    rows, best = [], {}
    for metric in outcomes.metrics:
        better = outcomes.better(metric)
        have = [c for c in selection.checkpoints if c.name in better]
        real = np.array([better[c.name] for c in have])
        predictors = {"mean": np.array([c.mean for c in have])}
        predictors |= {f"k={k:g}": np.array([c.worst_case[j] for c in have]) for j, k in enumerate(ks)}
        if selection.sense == "cost":  # the selection's values: smaller is better; agreement wants larger
            predictors = {name: -v for name, v in predictors.items()}
        for name, pred in predictors.items():
            a = agreement(pred, real, at=(1, 3))
            rows.append(
                PredictorScore(metric, name, a.spearman, a.kendall, a.regret[1], a.regret.get(3), len(have))
            )
        if len(have) >= 3 and np.ptp(real) > 0:  # equal outcomes (all fell, say) cannot tell radii apart
            values = np.array([c.worst_case for c in have]) * (-1 if selection.sense == "cost" else 1)
            try:
                choice = best_k(values, real, ks)
            except ValueError:  # no leave-one-out fold has varying outcomes
                continue
            best[metric] = {"k": choice.k, "stability": choice.stability, "score": choice.score.tolist(),
                            "tied": choice.tied}  # fmt: skip
    return rows, best


def judge_picks(selection: SelectionResult, outcomes: Outcomes) -> dict[str, list[dict]]:
    """Per metric, what each pick did: the recommended checkpoint, the worst case's pick (where
    it differs), the mean's pick and the last checkpoint, each with its outcome and its regret
    against the best checkpoint tried (in the metric's units, >= 0), or ``tried: False``."""
    picks = selection.picks
    out = {}
    for metric in outcomes.metrics:
        better, raw = outcomes.better(metric), outcomes.means[metric]
        top = max(better.values())
        out[metric] = [
            {"checkpoint": p.name, "roles": list(p.roles), "tried": p.name in raw,
             "outcome": raw.get(p.name), "regret": top - better[p.name] if p.name in better else None}
            for p in picks
        ]  # fmt: skip
    return out


def pick_outcome_lines(picks: dict[str, list[dict]]) -> list[str]:
    """One line per metric: each pick's outcome and regret, or that it was not tried."""
    lines = []
    for metric, judged in picks.items():
        parts = [
            f"{' + '.join(p['roles'])} {p['checkpoint']}: "
            + (f"{p['outcome']:.3g} (regret {p['regret']:.3g})" if p["tried"] else "not tried")
            for p in judged
        ]
        lines.append(f"{metric}: " + "; ".join(parts))
    return lines


def write_outcomes(
    out_dir: Path,
    rows: list[PredictorScore],
    best: dict,
    outcomes: Outcomes,
    picks: dict[str, list[dict]],
    stem: str = "outcomes",
) -> tuple[Path, Path]:
    """``<stem>.json`` (scores, best k, trials, outcomes as recorded, what each pick did) and
    ``<stem>.csv`` (the scores) under ``out_dir``."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["metric", "predictor", "spearman", "kendall", "regret@1", "regret@3", "checkpoints"])
    for r in rows:
        writer.writerow([r.metric, r.predictor, r.spearman, r.kendall, r.regret_1, r.regret_3, r.checkpoints])
    data = {
        "scores": [asdict(r) for r in rows],
        "best_k": best,
        "trials": outcomes.trials,
        "outcomes": outcomes.means,
        "lower_is_better": list(outcomes.lower_is_better),
        "picks": picks,
    }
    return (
        atomic_write_text(out_dir / f"{stem}.json", json.dumps(data, indent=2)),
        atomic_write_text(out_dir / f"{stem}.csv", buf.getvalue()),
    )


@dataclass(frozen=True)
class Source:
    """Where outcomes come from, and where their judgement is written and shown."""

    stem: str
    """Results file under ``<run>/postconv/``, without extension."""
    title: str
    """Heading in the report."""
    wandb_prefix: str
    """Key prefix on the selection's W&B run."""


SOURCES = {
    "real": Source("outcomes", "Real-robot outcomes", "outcomes"),
    "sim2sim": Source("sim2sim/agreement", "Sim-to-sim outcomes (C MuJoCo, shifted worlds)", "sim2sim"),
}
HEADER = ["metric", "predictor", "spearman", "kendall", "regret@1", "regret@3"]


@dataclass(frozen=True)
class Judgement:
    """How well the selection's predictors ranked the checkpoints by one source's outcomes."""

    source: str
    rows: list[PredictorScore]
    best: dict[str, dict]
    outcomes: Outcomes
    paths: tuple[Path, Path]
    picks: dict[str, list[dict]]
    """metric -> what each pick did (:func:`judge_picks`)."""


def numeric_rows(rows: list[PredictorScore]) -> list[list]:
    """The rows of :data:`HEADER` as numbers (None where regret@3 needs more checkpoints), for W&B."""
    return [[r.metric, r.predictor, r.spearman, r.kendall, r.regret_1, r.regret_3] for r in rows]


def cells(rows: list[PredictorScore]) -> list[list[str]]:
    """The rows of :data:`HEADER` as printed strings."""
    return [
        [r.metric, r.predictor, f"{r.spearman:.3f}", f"{r.kendall:.3f}", f"{r.regret_1:.3g}",
         "" if r.regret_3 is None else f"{r.regret_3:.3g}"]
        for r in rows
    ]  # fmt: skip


def judge(
    run_dir: Path, outcomes_csv: Path, lower_is_better: tuple[str, ...] = (), source: str = "real"
) -> Judgement:
    """Score the run's selection against an outcomes CSV and write the result beside it."""
    out = Path(run_dir) / STAGE_DIR
    if not (out / "selection.json").is_file():
        raise FileNotFoundError(f"{run_dir}: no selection yet; run `postconv run {run_dir}` first")
    selection = SelectionResult.from_json((out / "selection.json").read_text())
    real = read_outcomes(
        outcomes_csv, [c.name for c in selection.checkpoints], lower_is_better, selection.skipped
    )
    rows, best = score(selection, real)
    picks = judge_picks(selection, real)
    paths = write_outcomes(out, rows, best, real, picks, stem=SOURCES[source].stem)
    return Judgement(source, rows, best, real, paths, picks)


def report_section(run_dir: Path) -> str:
    """HTML of every judgement on disk (real outcomes, sim-to-sim), for the report."""
    from postconv.review.html_report import rows_table

    parts = []
    for source in SOURCES.values():
        try:
            data = json.loads((Path(run_dir) / STAGE_DIR / f"{source.stem}.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        rows = [PredictorScore(**r) for r in data["scores"]]
        lines = "".join(f"<li>{html.escape(best_k_line(m, c))}</li>" for m, c in data["best_k"].items())
        if source is SOURCES["real"]:  # sim2sim's worlds x metrics would make it a page; its console has them
            lines += "".join(f"<li>{html.escape(x)}</li>" for x in pick_outcome_lines(data.get("picks", {})))
        parts.append(
            f"<h2>{html.escape(source.title)}</h2>" + rows_table(HEADER, cells(rows)) + f"<ul>{lines}</ul>"
        )
    return "".join(parts)


def publish(
    run_dir: Path,
    judgement: Judgement,
    console,
    wandb: bool = True,
    metrics: set[str] | None = None,
    images: dict[str, Path] | None = None,
) -> None:
    """Print a judgement (optionally only some metrics; all are on disk), add it to the report and, with
    ``images`` (W&B key -> PNG), to the selection's W&B run."""
    from rich.markup import escape
    from rich.table import Table

    source = SOURCES[judgement.source]
    table = Table(
        title=f"{source.title}: agreement ({len(judgement.outcomes.trials)} checkpoints; regret: lower is better)"
    )
    for h in HEADER:
        table.add_column(h, justify="right" if h not in ("metric", "predictor") else "left")
    rows = [r for r in judgement.rows if metrics is None or r.metric in metrics]
    for row in cells(rows):
        table.add_row(*(escape(c) for c in row))  # metric[world] is not markup
    console.print(table)
    for metric, choice in judgement.best.items():
        if metrics is None or metric in metrics:
            console.print(escape(best_k_line(metric, choice)))
    shown = {m: p for m, p in judgement.picks.items() if metrics is None or m in metrics}
    for line in pick_outcome_lines(shown):
        console.print(escape(line))
    for p in judgement.paths:
        console.print(f"wrote {p}")
    rewrite_report(run_dir)
    if wandb:
        from postconv.dashboard.log import log_outcomes

        summary = {
            f"{source.wandb_prefix}/best_k/{m}": c["k"] for m, c in judgement.best.items() if not c["tied"]
        }
        summary |= {  # what the recommended checkpoint lost against the best one tried
            f"{source.wandb_prefix}/chosen_regret/{m}": chosen["regret"]
            for m, judged in judgement.picks.items()
            for chosen in judged
            if "chosen" in chosen["roles"] and chosen["tried"]
        }
        try:
            ref = log_outcomes(
                run_dir,
                HEADER,
                numeric_rows(judgement.rows),
                summary,
                key=f"{source.wandb_prefix}/table",
                images=images,
                means=judgement.outcomes.means,
            )
        except Exception as err:  # the outcomes are on disk; W&B trouble must not sink them
            console.print(
                f"[yellow]W&B logging failed[/] ({type(err).__name__}: {err}); the outcomes are on disk"
            )
            return
        if ref is None:
            console.print(
                "the selection has no W&B run (made with --no-wandb?): the outcomes are on disk only"
            )
        if ref is not None and ref.training_error:
            console.print(f"[yellow]the training's own W&B run was not updated[/] ({ref.training_error})")
        if ref is not None and ref.mode == "offline":
            console.print(f"added to the offline W&B run; upload it with: wandb sync {ref.run_dir.resolve()}")
            if ref.training_dir is not None:
                console.print(f"and to the training's run: wandb sync {ref.training_dir.resolve()}")


def best_k_line(metric: str, choice: dict) -> str:
    """The best radius for a metric in words, or that none predicts better than another."""
    if choice.get("tied"):
        return f"{metric}: no k predicts better than another (every radius ranks the tried checkpoints alike)"
    return f"{metric}: k = {choice['k']:g} predicts best (leave-one-out, chosen in {choice['stability']:.0%} of folds)"


def rewrite_report(run_dir: Path) -> None:
    """Rewrite report.html with the judgements on disk added (charts and scenario tables as before)."""
    from postconv.review.html_report import write_html_report

    out = run_dir / STAGE_DIR
    report = out / "report"
    if not (report / "report.html").is_file():
        return
    selection = SelectionResult.from_json((out / "selection.json").read_text())
    by_scenario = {
        p.stem: SelectionResult.from_json(p.read_text()) for p in sorted((out / "by_scenario").glob("*.json"))
    }
    order = ["estimates", "worst_case_vs_k", "rank_change", "training_curve", "tilt", "sim2sim", "margins"]
    charts = [report / f"{name}.png" for name in order if (report / f"{name}.png").is_file()]
    from postconv.ranking.baselines import BASELINES_FILE, read_baselines
    from postconv.storage.evaluation_record import read_evaluation

    write_html_report(
        report / "report.html",
        run_dir,
        selection,
        by_scenario,
        charts,
        extra=report_section(run_dir),
        candidates=(read_evaluation(run_dir) or {}).get("candidates_reason"),
        baselines=read_baselines(report / BASELINES_FILE, selection),
    )
