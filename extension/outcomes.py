"""Real-robot outcomes close the loop: how well did each predictor rank the checkpoints?

The user's CSV holds one row per trial: a ``checkpoint`` column (names as in the
selection, e.g. ``model_1450``), optionally a ``trial`` column, and one numeric column per
metric (larger is better; name a metric in ``lower_is_better`` to flip it). Each metric is
averaged over its trials per checkpoint, then compared with the plain simulation mean and
with the worst case at every k of the selection: Spearman, Kendall, top-1 regret and
regret@3, and the k that best predicts by leave-one-out (:func:`postconv.selection.best_k`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from postconv.report import SelectionResult
from postconv.sample_store import atomic_write_text
from postconv.selection import agreement, best_k


@dataclass(frozen=True)
class Outcomes:
    """Real outcomes per metric and checkpoint (means over trials)."""

    metrics: tuple[str, ...]
    means: dict[str, dict[str, float]]
    """metric -> checkpoint -> mean over its trials (sign flipped for lower-is-better metrics)."""
    trials: dict[str, int]
    """checkpoint -> number of trials."""


def read_outcomes(path: Path, checkpoints: list[str], lower_is_better: tuple[str, ...] = ()) -> Outcomes:
    """Read and check the outcomes CSV; every bad row is named in one error."""
    try:
        text = Path(path).read_text()
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
    known, problems, seen = set(checkpoints), [], {}
    values: dict[str, dict[str, list[float]]] = {m: {} for m in metrics}
    for line, row in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        name = row.get("checkpoint", "")
        if name not in known:
            problems.append(
                f"line {line}: checkpoint {name!r} was not ranked (ranked: {', '.join(checkpoints)})"
            )
            continue
        if "trial" in row:
            key = (name, row["trial"])
            if key in seen:
                problems.append(
                    f"line {line}: checkpoint {name!r} trial {row['trial']!r} repeats line {seen[key]}"
                )
                continue
            seen[key] = line
        for metric in metrics:
            try:
                value = float(row.get(metric, ""))
            except ValueError:
                problems.append(f"line {line}: {metric} = {row.get(metric)!r} is not a number")
                continue
            if not math.isfinite(value):
                problems.append(f"line {line}: {metric} = {row.get(metric)!r} is not finite")
                continue
            values[metric].setdefault(name, []).append(-value if metric in lower_is_better else value)
    if problems:
        raise ValueError(f"{path}: {len(problems)} bad rows:\n  " + "\n  ".join(problems))
    means = {m: {c: float(np.mean(v)) for c, v in values[m].items()} for m in metrics}
    trials = {c: len(v) for c, v in values[metrics[0]].items()}
    if len(trials) < 2:
        raise ValueError(
            f"{path}: outcomes for {len(trials)} checkpoint(s); comparing rankings needs at least 2"
        )
    return Outcomes(metrics=metrics, means=means, trials=trials)


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
        have = [c for c in selection.checkpoints if c.name in outcomes.means[metric]]
        real = np.array([outcomes.means[metric][c.name] for c in have])
        predictors = {"mean": np.array([c.mean for c in have])}
        predictors |= {f"k={k:g}": np.array([c.worst_case[j] for c in have]) for j, k in enumerate(ks)}
        if selection.sense == "cost":  # the selection's values: smaller is better; agreement wants larger
            predictors = {name: -v for name, v in predictors.items()}
        for name, pred in predictors.items():
            a = agreement(pred, real, at=(1, 3))
            rows.append(
                PredictorScore(metric, name, a.spearman, a.kendall, a.regret[1], a.regret.get(3), len(have))
            )
        if len(have) >= 3:
            values = np.array([c.worst_case for c in have]) * (-1 if selection.sense == "cost" else 1)
            choice = best_k(values, real, ks)
            best[metric] = {"k": choice.k, "stability": choice.stability, "score": choice.score.tolist()}
    return rows, best


def write_outcomes(
    out_dir: Path, rows: list[PredictorScore], best: dict, outcomes: Outcomes
) -> tuple[Path, Path]:
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
    }
    return (
        atomic_write_text(out_dir / "outcomes.json", json.dumps(data, indent=2)),
        atomic_write_text(out_dir / "outcomes.csv", buf.getvalue()),
    )
