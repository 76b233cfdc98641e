"""Robustness margins: how far each checkpoint can be pushed, per kind of shift.

A fixed magnitude per world says little: a world either fells every candidate, or none, or
happens to sit where they differ. For each kind of shift (:data:`KINDS`) a checkpoint's
**margin** is the largest magnitude at which it still survives at least ``share`` of its
episodes (default half), found by a search over magnitudes:

1. the base world (magnitude ``bottom``: the base pushes only) and the kind's most severe
   magnitude ``top`` (where most fall at once, so it is cheap) bracket every candidate;
2. ``rounds`` of bisection: each candidate runs at the middle of its own bracket (snapped to
   the kind's lattice: 5 ms of latency, 20 ms of observation delay) and keeps the half where
   its share crosses. Candidates whose middles coincide share a batch, so a round costs at
   most one fixed world's episodes, however the brackets have spread;
3. the margin is read off the share curve through every magnitude tried: the largest tried
   magnitude whose share is at least ``share``, moved by linear interpolation toward the next
   magnitude tried (where the share fell below). A candidate that survives the top is given
   the top (censored ``above``); one that fails the base world gets the bottom (``below``).

Every candidate and magnitude meets the same episodes (common random numbers: the same
initial states, push directions and noise draws; a push of twice the speed is the same kick
twice as hard). The interval resamples the episodes (the same resample at every magnitude,
since they are paired) and reads the margin off the resampled shares: the episodes' noise at
the magnitudes tried, not the search's.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from postconv.sim2sim.config import KINDS, StressConfig, StressKind
from postconv.sim2sim.worlds import Command, World, parse_world


@dataclass
class KindMargins:
    """Every checkpoint's margin for one kind of shift."""

    kind: str
    unit: str
    bottom: float
    top: float
    margin: dict[str, float]
    """checkpoint -> margin (in ``unit``)."""
    lo: dict[str, float]
    hi: dict[str, float]
    censored: dict[str, str]
    """checkpoint -> ``above`` (survives the top), ``below`` (fails the base world) or ``""``."""
    tried: dict[str, list[tuple[float, float]]]
    """checkpoint -> (magnitude, survival share) at every magnitude it ran, ascending."""
    env_steps: int = 0
    """Env-steps this kind's search simulated (not read back from disk)."""
    seconds: float = 0.0
    bracket: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    """checkpoint -> (the largest magnitude tried it survived, the smallest above that it
    failed): the search's own resolution, which the interval (episode noise only) leaves out.
    None where there is none (``above``: no failure tried; ``below``: no pass)."""


@dataclass
class Margins:
    """The margin search's results (:func:`stress_test`)."""

    config: StressConfig
    checkpoints: list[str]
    kinds: dict[str, KindMargins]
    fixed_world_steps: int
    """Env-steps of one fixed world (every checkpoint, every episode to the end): the cost unit."""
    base_world: str
    base_env_steps: int = 0
    paths: dict[str, Path] = field(default_factory=dict)

    def column(self, kind: str) -> str:
        return f"margin[{kind}]"

    def rows(self) -> list[dict]:
        return [
            {"checkpoint": c, "kind": k.kind, "unit": k.unit, "margin": k.margin[c], "lo": k.lo[c],
             "hi": k.hi[c], "censored": k.censored[c], "survived": k.bracket[c][0], "fell": k.bracket[c][1]}
            for c in self.checkpoints for k in self.kinds.values()
        ]  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(
            {
                "config": asdict(self.config),
                "checkpoints": self.checkpoints,
                "base_world": self.base_world,
                "fixed_world_steps": self.fixed_world_steps,
                "base_env_steps": self.base_env_steps,
                "kinds": {n: asdict(k) for n, k in self.kinds.items()},
            },
            indent=2,
        )


def margin_from_shares(
    magnitudes: np.ndarray, shares: np.ndarray, share: float
) -> tuple[np.ndarray, np.ndarray]:
    """The margin read off share curves, and how it is censored.

    ``magnitudes`` (M,) ascending; ``shares`` (M, B): B curves (a candidate's, or its
    resamples). Per curve: i = the largest index with shares[i] >= share; the margin is
    m_i + (s_i - share) / (s_i - s_{i+1}) (m_{i+1} - m_i), the crossing of the straight line to
    the next magnitude tried; m_{M-1} where i is the last (censored +1: survives the top);
    m_0 where no i exists (censored -1: fails even the first). Returns ((B,) margins, (B,) censoring).
    """
    shares = np.asarray(shares, dtype=float)
    ok = shares >= share
    any_ok = ok.any(axis=0)
    last = magnitudes.shape[0] - 1 - np.argmax(ok[::-1], axis=0)  # largest ok index, per curve
    nxt = np.minimum(last + 1, magnitudes.shape[0] - 1)
    cols = np.arange(shares.shape[1])
    s_i, s_n = shares[last, cols], shares[nxt, cols]
    m_i, m_n = magnitudes[last], magnitudes[nxt]
    inner = any_ok & (last < magnitudes.shape[0] - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = m_i + (s_i - share) / (s_i - s_n) * (m_n - m_i)
    margin = np.where(inner, crossing, np.where(any_ok, magnitudes[-1], magnitudes[0]))
    censored = np.where(inner, 0, np.where(any_ok, 1, -1))
    return margin, censored


def _interval(tried: dict[float, np.ndarray], config: StressConfig, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the margin over resamples of the episodes (paired across magnitudes;
    one seed for every checkpoint, so that they share the resamples as they share the episodes)."""
    if not config.n_boot:
        return math.nan, math.nan
    mags = np.array(sorted(tried))
    survived = np.stack([tried[m] for m in mags]).astype(float)  # (M, E)
    E = survived.shape[1]
    idx = np.random.default_rng(seed).integers(0, E, size=(config.n_boot, E))
    shares = survived[:, idx].mean(axis=2)  # (M, B)
    margins, _ = margin_from_shares(mags, shares, config.share)
    alpha = (1 - config.level) / 2
    lo, hi = np.quantile(margins, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _search_kind(
    kind: StressKind,
    replay: Callable[[World, list[str]], dict[str, np.ndarray]],
    names: list[str],
    base: dict[str, np.ndarray],
    config: StressConfig,
    command: Command | None,
    on_round: Callable[[str], None],
) -> dict[str, dict[float, np.ndarray]]:
    """checkpoint -> magnitude -> (episodes,) survived, for every magnitude the search tried."""
    push = config.push
    bottom, top = kind.bottom(push), kind.top

    def world(m: float) -> World:
        return parse_world(kind.shift(m, push), command)

    tried = {n: {bottom: base[n]} for n in names}
    passed = [n for n in names if base[n].mean() >= config.share]
    on_round(f"{kind.name}: {kind.shift(top, push)}")
    if passed:
        for n, survived in replay(world(top), passed).items():
            tried[n][top] = survived
    bracket = {n: (bottom, top) for n in passed if tried[n][top].mean() < config.share}
    for _ in range(config.rounds):
        groups: dict[float, list[str]] = {}
        for n, (lo, hi) in bracket.items():
            mid = kind.snap((lo + hi) / 2)
            if lo < mid < hi:
                groups.setdefault(mid, []).append(n)
        on_round(f"{kind.name}: {len(groups)} magnitudes")
        if not groups:
            break
        for mid, group in sorted(groups.items()):
            for n, survived in replay(world(mid), group).items():
                tried[n][mid] = survived
                lo, hi = bracket[n]
                bracket[n] = (mid, hi) if survived.mean() >= config.share else (lo, mid)
    return tried


def stress_test(
    replayer, names: list[str], config: StressConfig, command: Command | None, console
) -> Margins:
    """Each checkpoint's margin per kind of shift (the module docstring says how).

    ``replayer``: a :class:`postconv.sim2sim.evaluate.Replayer` (episodes on disk are reused,
    so an interrupted search resumes); ``command``: the command of the run's worlds.
    """
    from tqdm import tqdm

    spec = replayer.spec
    kinds = [KINDS[k] for k in config.kinds]
    console.print(
        f"stress: margins of {len(names)} checkpoints for {len(kinds)} kinds of shift (share {config.share:g} of "
        f"{spec.episodes} episodes survive; bracket + {config.rounds} bisection rounds; base: {config.base_world})"
    )

    def survived(world: World, group: list[str]) -> dict[str, np.ndarray]:
        return {n: v["survived"].astype(bool) for n, v in replayer.replay(world, group).items()}

    steps0 = replayer.env_steps
    base = survived(parse_world(config.base_world, command), names)
    margins = Margins(
        config=config, checkpoints=list(names), kinds={}, fixed_world_steps=len(names) * spec.episodes * spec.steps,
        base_world=config.base_world, base_env_steps=replayer.env_steps - steps0,
    )  # fmt: skip
    with tqdm(total=len(kinds) * (config.rounds + 1), desc="stress", unit="round", dynamic_ncols=True) as bar:
        for kind in kinds:
            t0, steps0 = time.perf_counter(), replayer.env_steps
            done = bar.n

            def on_round(what: str) -> None:
                bar.set_postfix_str(what)
                bar.update(1)

            tried = _search_kind(kind, survived, names, base, config, command, on_round)
            bar.update(done + config.rounds + 1 - bar.n)
            margins.kinds[kind.name] = _kind_margins(kind, tried, names, config)
            margins.kinds[kind.name].env_steps = replayer.env_steps - steps0
            margins.kinds[kind.name].seconds = time.perf_counter() - t0
    return margins


def _kind_margins(kind: StressKind, tried: dict, names: list[str], config: StressConfig) -> KindMargins:
    out = KindMargins(kind.name, kind.unit, kind.bottom(config.push), kind.top, {}, {}, {}, {}, {})
    for n in names:
        mags = np.array(sorted(tried[n]))
        shares = np.array([[tried[n][m].mean()] for m in mags])
        m, c = margin_from_shares(mags, shares, config.share)
        out.margin[n] = float(m[0])
        out.censored[n] = {0: "", 1: "above", -1: "below"}[int(c[0])]
        out.lo[n], out.hi[n] = _interval(tried[n], config)
        out.tried[n] = [(float(x), float(s[0])) for x, s in zip(mags, shares, strict=True)]
        out.bracket[n] = _bracket(out.tried[n], config.share)
    return out


def _bracket(tried: list[tuple[float, float]], share: float) -> tuple[float | None, float | None]:
    """(largest magnitude with survival >= share, the next magnitude tried above it), from
    ``tried`` ascending; the margin lies between them whatever the interpolation says."""
    passed = [i for i, (_, s) in enumerate(tried) if s >= share]
    if not passed:
        return None, tried[0][0] if tried else None
    i = passed[-1]
    return tried[i][0], tried[i + 1][0] if i + 1 < len(tried) else None


def format_margin(kind: KindMargins, checkpoint: str, interval: bool = True) -> str:
    """``0.42 [0.35, 0.5]``; ``>=0.8`` where it survives the top, ``<0`` where it fails the base world."""
    prefix = {"above": ">=", "below": "<", "": ""}[kind.censored[checkpoint]]
    text = f"{prefix}{kind.margin[checkpoint]:.3g}"
    lo, hi = kind.lo[checkpoint], kind.hi[checkpoint]
    if interval and math.isfinite(lo):
        text += f" [{lo:.3g}, {hi:.3g}]"
    return text


def print_margins(margins: Margins, console, marks: dict[str, str] | None = None) -> None:
    """The margins table (checkpoint x kind, with intervals) and what the search cost."""
    from rich.markup import escape
    from rich.table import Table

    cfg = margins.config
    table = Table(
        title=f"Robustness margins: the largest shift at which {cfg.share:.0%} of the episodes survive "
        f"({cfg.level:.0%} interval over the episodes; higher is better)",
        caption="interpolated between the magnitudes tried; the interval is the episodes' noise only, "
        "the search's own resolution is in margins.csv (survived, fell: the tried magnitudes around it)",
    )
    table.add_column("checkpoint")
    for k in margins.kinds.values():
        table.add_column(f"{k.kind}" + (f" ({k.unit})" if k.unit else ""), justify="right")
    for c in margins.checkpoints:
        label = escape(c) + (f" [bold]{escape(marks[c])}[/]" if marks and c in marks else "")
        table.add_row(label, *(format_margin(k, c) for k in margins.kinds.values()))
    console.print(table)
    unit = margins.fixed_world_steps
    cost = ", ".join(f"{k.kind} {k.env_steps / unit:.1f}" for k in margins.kinds.values())
    console.print(
        f"stress cost in fixed worlds (every checkpoint and episode to the end): base world "
        f"{margins.base_env_steps / unit:.1f}, {cost}; simulated now, not read back from disk"
    )


def margins_heatmap(margins: Margins, path: Path, marks: dict[str, str] | None = None) -> Path:
    """Checkpoints (rows, training order) x kinds: each column coloured from its smallest margin
    (dark) to its largest (light), every cell labelled with the margin; ``marks`` names rows."""
    from postconv.review.figures import pyplot, save_figure

    kinds = list(margins.kinds.values())
    names = margins.checkpoints
    values = np.array([[k.margin[c] for k in kinds] for c in names])
    span = values.max(axis=0) - values.min(axis=0)
    scaled = np.where(span > 0, (values - values.min(axis=0)) / np.where(span > 0, span, 1.0), 0.5)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.1 * len(kinds) + 3.0, 0.32 * len(names) + 1.6))
    ax.imshow(scaled, cmap="viridis", aspect="auto", vmin=0, vmax=1)
    for i, c in enumerate(names):
        for j, k in enumerate(kinds):
            ax.text(j, i, format_margin(k, c, interval=False), ha="center", va="center", fontsize=7,
                    color="white" if scaled[i, j] < 0.6 else "black")  # fmt: skip
    ax.set_xticks(
        range(len(kinds)), [k.kind + (f"\n({k.unit})" if k.unit else "") for k in kinds], fontsize=8
    )
    labels = [c + (f"  {marks[c]}" if marks and c in marks else "") for c in names]
    ax.set_yticks(range(len(names)), labels, fontsize=8)
    for tick, c in zip(ax.get_yticklabels(), names, strict=True):
        if marks and c in marks:
            tick.set_fontweight("bold")
    ax.set_title(
        f"Robustness margins ({margins.config.share:.0%} of episodes survive; each column dark = smallest, light = largest)",
        fontsize=9,
    )
    return save_figure(fig, path)


__all__ = [
    "KINDS",
    "KindMargins",
    "Margins",
    "StressConfig",
    "StressKind",
    "margin_from_shares",
    "stress_test",
]
