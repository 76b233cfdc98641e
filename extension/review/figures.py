"""The selection's charts as PNG files: for the local report and for W&B alike.

- ``estimates.png``: each checkpoint's mean (the direct simulation estimate) beside its
  worst case at the primary k, with the bootstrap interval;
- ``worst_case_vs_k.png``: worst-case value against k per checkpoint (k = 0 is the mean);
- ``rank_change.png``: how ranks move from the mean to the worst case;
- ``training_curve.png``: the training reward with the candidates and the choice marked;
- ``tilt.png``: for the chosen checkpoint, how the worst-case reweighting shifts the
  average of every reward term and state feature: what carries the weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from postconv.ranking.result import SelectionResult


@dataclass(frozen=True)
class Tilt:
    """Averages under the simulation distribution q and the worst case rho, per column."""

    names: tuple[str, ...]
    under_q: np.ndarray
    """(C,) mean of each reward term and feature under q."""
    under_rho: np.ndarray
    """(C,) the same under the worst-case weights rho."""
    scale: np.ndarray
    """(C,) standard deviation under q: the shift in these units is comparable across columns."""

    @property
    def shift(self) -> np.ndarray:
        """(rho mean - q mean) / std, per column."""
        return (self.under_rho - self.under_q) / np.where(self.scale > 0, self.scale, 1.0)


def tilt_of(
    psi: np.ndarray, columns: np.ndarray, names: tuple[str, ...], k: float, divergence: str, sense: str
) -> Tilt:
    """The worst-case tilt of one checkpoint's samples.

    rho = the worst-case distribution of psi (n,) at radius k; for each column x of
    ``columns`` (n, C): E_q[x] = mean(x), E_rho[x] = sum_j rho_j x_j.
    """
    from postconv.selection import worst_case

    rho = np.asarray(worst_case(psi.astype(np.float64), k=k, divergence=divergence, sense=sense).weights)
    x = columns.astype(np.float64)
    return Tilt(names=names, under_q=x.mean(0), under_rho=rho @ x, scale=x.std(0))


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


ROLE_COLORS = {
    "chosen": "#2a9d4b",
    "worst case's pick": "#1f5fa8",
    "mean's pick": "#e07b00",
    "last": "#7b3fa0",
}
"""The checkpoints a reader looks at first keep a colour of their own; every other one is grey,
so that the charts stay legible at 50 candidates (no colour cycle repeats)."""
OTHERS = "#b8bec6"


def _roles(result: SelectionResult) -> dict[str, tuple[str, str]]:
    """checkpoint -> (colour, label) for the chosen one, the worst case's and the mean's picks
    and the last one."""
    return {p.name: (ROLE_COLORS[p.roles[0]], " + ".join(p.roles)) for p in result.picks}


def _row_height(n: int) -> float:
    """Figure height (in) of a chart with one row per checkpoint: readable at any count."""
    return max(3.0, 0.26 * n + 1.4)


def estimates_chart(result: SelectionResult, path: Path) -> Path:
    """One row per checkpoint (training order, top down): the mean and the worst case at the
    primary k with its interval; the picks (chosen, worst case's, mean's, last) in colour."""
    plt = pyplot()
    ks = result.config.k
    p = result.config.primary_index
    rows = result.checkpoints
    roles = _roles(result)
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(9, _row_height(len(rows))))
    worst = np.array([c.worst_case[p] for c in rows])
    colors = [roles.get(c.name, (OTHERS, ""))[0] for c in rows]
    if rows[0].interval is not None:
        lo = np.array([c.interval[p][0] for c in rows])
        hi = np.array([c.interval[p][1] for c in rows])
        ax.hlines(y, lo, hi, colors=colors, lw=2, alpha=0.6)
    ax.scatter([c.mean for c in rows], y, marker="|", s=120, color="#555555", zorder=3)
    ax.scatter(worst, y, color=[c if c != OTHERS else "#3b6ea8" for c in colors], s=30, zorder=4)
    labels = [c.name + (f"  ({roles[c.name][1]})" if c.name in roles else "") for c in rows]
    ax.set_yticks(y, labels, fontsize="small")
    for tick, c in zip(ax.get_yticklabels(), rows, strict=True):
        if c.name in roles:
            tick.set_color(roles[c.name][0])
            tick.set_fontweight("bold")
    ax.invert_yaxis()
    ax.grid(axis="x", color="#e5e5e5")
    interval = f" and its {result.config.level:.0%} interval" if rows[0].interval is not None else ""
    ax.set_xlabel("performance (a sample's value)")
    ax.set_title(
        f"Estimates per checkpoint: dot = worst case at k = {ks[p]:g}{interval}, bar = plain mean",
        fontsize=10,
    )
    return save_figure(fig, path)


def worst_case_vs_k_chart(result: SelectionResult, path: Path) -> Path:
    """Worst case against k, one line per checkpoint: the picks in colour (with a legend), the rest grey."""
    plt = pyplot()
    ks = [0.0, *result.config.k]
    roles = _roles(result)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for c in result.checkpoints:
        color, label = roles.get(c.name, (OTHERS, None))
        ax.plot(
            ks, [c.mean, *c.worst_case], marker="o", ms=3 if label is None else 5, color=color,
            lw=2.5 if label else 0.8, label=f"{c.name} ({label})" if label else None, zorder=3 if label else 2,
        )  # fmt: skip
    ax.plot([], [], color=OTHERS, lw=0.8, label=f"the other {len(result.checkpoints) - len(roles)}")
    ax.axvline(result.config.primary_k, color="grey", ls=":", lw=1)
    ax.set_xlabel(f"radius k ({result.config.divergence.upper()}); k = 0 is the mean")
    ax.set_ylabel("worst-case performance")
    ax.set_title("Worst case against the radius")
    # beside the axes: inside, the legend would hide the lines under it
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)


def rank_change_chart(result: SelectionResult, path: Path) -> Path:
    plt = pyplot()
    p = result.config.primary_index
    roles = _roles(result)
    fig, ax = plt.subplots(figsize=(6, _row_height(len(result.checkpoints))))
    for c in result.checkpoints:
        color, label = roles.get(c.name, (OTHERS, None))
        ax.plot([0, 1], [c.mean_rank, c.rank[p]], marker="o", ms=3, color=color, lw=2.5 if label else 1)
        ax.annotate(
            c.name + (f" ({label})" if label else ""), (1, c.rank[p]), xytext=(6, 0), textcoords="offset points",
            va="center", fontsize="small", color=color if label else "#555555",
            fontweight="bold" if label else "normal",
        )  # fmt: skip
    ax.set_xticks([0, 1], ["mean", f"worst case k = {result.config.primary_k:g}"])
    ax.set_xlim(-0.2, 1.9)
    ax.invert_yaxis()
    ax.set_ylabel("rank (1 = best)")
    ax.set_title("Rank from mean to worst case")
    return save_figure(fig, path)


def training_curve_chart(
    iterations: np.ndarray, values: np.ndarray, candidates: dict[str, int], chosen: str, path: Path
) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    ax.plot(iterations, values, color="#9aa7b8", lw=1, label="Train/mean_reward")
    for name, it in candidates.items():
        ax.axvline(
            it, color="#2a9d4b" if name == chosen else "#3b6ea8", lw=2 if name == chosen else 0.6, alpha=0.8
        )
    ax.set_xlabel("iteration")
    ax.set_ylabel("mean episode reward")
    ax.set_title(f"Training reward; candidates (lines), chosen {chosen} (green)")
    return save_figure(fig, path)


def tilt_chart(tilt: Tilt, checkpoint: str, k: float, path: Path) -> Path:
    plt = pyplot()
    order = np.argsort(np.abs(tilt.shift))
    fig, ax = plt.subplots(figsize=(6.5, max(3, 0.28 * len(order) + 1.2)))
    shift = tilt.shift[order]
    ax.barh(np.arange(order.size), shift, color=np.where(shift < 0, "#c0392b", "#3b6ea8"))
    ax.set_yticks(np.arange(order.size), [tilt.names[i] for i in order], fontsize="small")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("shift of the average under the worst case (standard deviations)")
    ax.set_title(f"{checkpoint}: what the worst case at k = {k:g} reweights")
    return save_figure(fig, path)
