"""A self-contained HTML report of a selection (plots embedded), for people without W&B."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from postconv.ranking.baselines import Baselines
from postconv.ranking.result import SelectionResult
from postconv.review.console_report import few_samples_note, ranking_rows
from postconv.storage.sample_store import atomic_write_text


def rows_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain HTML table of strings."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _table(result: SelectionResult) -> str:
    header, rows = ranking_rows(result)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        ('<tr class="chosen">' if name == result.chosen else "<tr>")
        + "".join(f"<td>{html.escape(x)}</td>" for x in cells)
        + "</tr>"
        for name, cells in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _baselines(baselines: Baselines | None, result: SelectionResult) -> str:
    """The rules a user has without the worst case: what each picks, and per checkpoint the
    numbers they pick by."""
    if baselines is None:
        return ""
    picks = baselines.picks(result)
    tied = any(pick.tied > 1 for pick in picks)
    rules = [
        [pick.rule, pick.checkpoint or "none (no training curve)"]
        + ([f"{pick.tied} tied, the latest" if pick.tied > 1 else ""] if tied else [])
        for pick in picks
    ]
    header, rows = baselines.rows(result)
    cells = [[_cell(v) for v in row[:-1]] + [_share(row[-1])] for row in rows]
    if result.config.n_boot:  # P(> last) of the last checkpoint itself: it is the reference
        cells[-1][-1] = "last"
    else:  # no bootstrap, no P(> last)
        header, cells = header[:-1], [row[:-1] for row in cells]
    k = f"k{result.config.primary_k:g}"
    labels = {"train_reward": "training reward", "sim_falls": "falls",
              f"worst_case_{k}": f"worst case at k = {result.config.primary_k:g}", f"p_beats_last_{k}": "P(> last)"}  # fmt: skip
    return (
        "<h2>What other rules pick</h2>"
        + rows_table(["rule", "picks", *(["ties"] if tied else [])], rules)
        + "<p>Per checkpoint in training order: the training reward (mean of the 10 logged "
        "iterations up to it), the falls in the recorded steps, the plain mean, the worst case "
        "and P(> last).</p>" + rows_table([labels.get(h, h) for h in header], cells)
    )


def _share(value: float | None) -> str:
    """A share of replicates as the ranking table shows it."""
    return "" if value is None else f"{value:.2f}"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}"></figure>'


def _bootstrap_note(result: SelectionResult) -> str:
    """How the intervals and P(best) were resampled, in a sentence."""
    how = result.bootstrap
    n = result.config.n_boot
    if not n:
        return "No bootstrap (intervals off)."
    if not how:  # written before the method was recorded: resampled per sample
        return f"Intervals, P(best) and P(> last) (the share in which a checkpoint beats the last one) from {n} group-bootstrap replicates."
    if how["method"] == "exact":
        return f"Intervals, P(best) and P(> last) (the share in which a checkpoint beats the last one) from {n} group-bootstrap replicates, each solved over the samples."
    return (
        f"Intervals, P(best) and P(> last) (the share in which a checkpoint beats the last one) from {n} group-bootstrap replicates found from per-group sums in "
        f"{how['passes']} passes over the samples; every replicate value is certified within "
        f"{how['max_gap']:.2g} of its exact optimum ({how['solved_exactly']} solved over the samples)."
    )


def _candidates(reason: str | None) -> str:
    """How the candidates were chosen; a run that never converged is flagged in orange."""
    if not reason:
        return ""
    style = ' style="color:#b35c00"' if "not converged" in reason else ""
    return f"<p{style}>Candidates: {html.escape(reason)}.</p>"


SECTIONS_DIR = "sections"
"""Under the report folder: HTML fragments that later steps (sim-to-sim) add to every rewrite of
the report, in the order of their names."""


def saved_sections(report_dir: Path) -> list[str]:
    """The fragments in ``report_dir/sections/*.html``, by name."""
    return [p.read_text() for p in sorted((report_dir / SECTIONS_DIR).glob("*.html"))]


def video_html(mp4: Path, poster: Path, caption: str) -> str:
    """An embedded, looping MP4 with its poster frame (the report stays one file)."""
    video = base64.b64encode(mp4.read_bytes()).decode()
    still = base64.b64encode(poster.read_bytes()).decode()
    return (
        f'<figure><video controls loop muted playsinline poster="data:image/png;base64,{still}" style="max-width:100%">'
        f'<source src="data:video/mp4;base64,{video}" type="video/mp4"></video>'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def write_html_report(
    path: Path,
    run_dir: Path,
    pooled: SelectionResult,
    by_scenario: dict[str, SelectionResult],
    figures: list[Path],
    extra: str = "",
    candidates: str | None = None,
    baselines: Baselines | None = None,
) -> Path:
    """Write ``path``: the ranking tables, the charts and the skipped checkpoints, in one file."""
    better = "higher" if pooled.sense == "reward" else "lower"
    parts = [
        "<!doctype html><meta charset='utf-8'><title>postconv selection</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child{text-align:left}tr.chosen{background:#e3f4e7;font-weight:bold}img{max-width:100%}</style>",
        f"<h1>Checkpoint selection for {html.escape(run_dir.name)}</h1>",
        f"<p>Run folder: <code>{html.escape(str(run_dir))}</code>. Chosen: <b>{html.escape(pooled.chosen)}</b> "
        f"({html.escape(pooled.chosen_because)}; {pooled.config.divergence.upper()} ball; {better} is better). "
        + (
            f"The worst case picks <b>{html.escape(pooled.chosen_by_worst_case)}</b>. "
            if pooled.chosen_by_worst_case != pooled.chosen
            and pooled.chosen_by_worst_case not in pooled.chosen_because  # --pick evidence names it
            else ""
        )
        + f"The plain simulation mean picks <b>{html.escape(pooled.chosen_by_mean)}</b>.</p>",
        _candidates(candidates),
        f"<h2>All scenarios pooled ({html.escape(', '.join(pooled.scenarios))})</h2>"
        if pooled.scenarios
        else "<h2>Ranking</h2>",
        f"<p>{pooled.samples_per_checkpoint:,} samples per checkpoint; value [rank]. {_bootstrap_note(pooled)}</p>",
        f"<p>A sample: {html.escape(pooled.sample['description'])}</p>" if pooled.sample else "",
        f'<p style="color:#b35c00">{html.escape(note)}</p>' if (note := few_samples_note(pooled)) else "",
        _table(pooled),
    ]
    parts.append(_baselines(baselines, pooled))
    parts += [_image(f) for f in figures]
    for name, result in by_scenario.items():
        parts += [f"<h2>Scenario {html.escape(name)}</h2>", _table(result)]
    if pooled.skipped:
        items = "".join(
            f"<li><b>{html.escape(c)}</b>: {html.escape(r)}</li>" for c, r in pooled.skipped.items()
        )
        parts.append(f"<h2>Not ranked</h2><ul>{items}</ul>")
    parts.append(extra)
    parts += saved_sections(path.parent)
    parts.append(f"<p><small>postconv {html.escape(pooled.version)}</small></p>")
    return atomic_write_text(path, "\n".join(parts))
