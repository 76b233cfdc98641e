"""Candidate checkpoints of an rsl_rl run in Isaac Lab's log layout.

A run folder is ``logs/rsl_rl/<experiment>/<timestamp>/`` holding ``model_<iter>.pt``,
``params/agent.yaml`` and ``params/env.yaml``, TensorBoard event files and (Isaac Lab 3)
``run.json``. The candidates are all checkpoints, those from an iteration on, every n-th,
or those after convergence, detected from the training curve by :func:`convergence`
(a run still rising or falling at its end is reported as not converged, and its last
checkpoints are the candidates).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

_MODEL = re.compile(r"model_(\d+)\.pt")
REWARD_TAG = "Train/mean_reward"
"""The training-curve scalar rsl_rl writes once episodes finish."""


class RunError(ValueError):
    """A run folder that cannot be evaluated, with what to do about it."""


@dataclass(frozen=True)
class Checkpoint:
    """One saved policy of a run."""

    path: Path
    iteration: int

    @property
    def name(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class Run:
    """What the stage needs from a run folder."""

    path: Path
    checkpoints: tuple[Checkpoint, ...]
    """Sorted by iteration."""
    agent_cfg: dict
    """``params/agent.yaml`` as saved by Isaac Lab."""
    task: str | None
    """The task id from ``run.json`` (Isaac Lab 3), if present."""


def open_run(path: str | Path) -> Run:
    """Read a run folder; raise :class:`RunError` naming the problem if it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run folder; pass logs/rsl_rl/<experiment>/<timestamp>")
    checkpoints = sorted(
        (Checkpoint(p, int(m.group(1))) for p in path.iterdir() if (m := _MODEL.fullmatch(p.name))),
        key=lambda c: c.iteration,
    )
    if not checkpoints:
        raise RunError(
            f"{path}: no model_<iter>.pt checkpoints; is this an rsl_rl run folder, and did training save?"
        )
    agent_yaml = path / "params" / "agent.yaml"
    if not agent_yaml.is_file():
        raise RunError(
            f"{path}: no params/agent.yaml; the actor's architecture is read from it (Isaac Lab writes it)"
        )
    task = None
    if (path / "run.json").is_file():
        try:
            task = json.loads((path / "run.json").read_text()).get("task")
        except (json.JSONDecodeError, AttributeError) as err:
            raise RunError(
                f"{path / 'run.json'}: not the JSON manifest Isaac Lab writes ({err}); fix or remove it"
            ) from err
    return Run(path=path, checkpoints=tuple(checkpoints), agent_cfg=read_params(agent_yaml), task=task)


def training_envs(run: Run) -> int | None:
    """How many envs the training ran (``scene.num_envs`` of ``params/env.yaml``), if known."""
    try:
        envs = read_params(run.path / "params" / "env.yaml").get("scene", {}).get("num_envs")
    except Exception:  # a missing or unreadable env.yaml only costs the GPU sizing its hint
        return None
    return envs if isinstance(envs, int) and envs > 0 else None


def read_params(path: Path) -> dict:
    """A ``params/*.yaml`` file as Isaac Lab dumps it (its python/tuple tags read as lists)."""
    import yaml

    class _Loader(yaml.SafeLoader):
        """Isaac Lab dumps tuples and slices with python/ tags: read them as plain lists, maps
        and scalars; no Python object is ever built from the file."""

    def plain(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node)
        return loader.construct_scalar(node)

    _Loader.add_multi_constructor("tag:yaml.org,2002:python/", plain)
    return yaml.load(path.read_text(), Loader=_Loader) or {}


def _created(events_file: Path) -> tuple[float, str]:
    """When an event file was started: the seconds TensorBoard puts in its name
    (``events.out.tfevents.<seconds>.<host>...``; kept by copies, unlike mtimes), else its mtime."""
    parts = events_file.name.split(".")
    try:
        return float(parts[3]), events_file.name
    except (IndexError, ValueError):
        return events_file.stat().st_mtime, events_file.name


def training_curve(run: Run, tag: str = REWARD_TAG) -> tuple[np.ndarray, np.ndarray] | None:
    """(iterations, values) of a scalar from the run's TensorBoard event files, or None if absent.

    A resumed run has a file per session: where two log the same iteration, the newer one
    (the branch the checkpoints continued) wins.
    """
    files = sorted(run.path.glob("events.out.tfevents.*"), key=_created)
    if not files:
        return None
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    by_step: dict[int, float] = {}
    for f in files:
        events = EventAccumulator(str(f), size_guidance={"scalars": 0})
        events.Reload()
        if tag in events.Tags().get("scalars", []):
            by_step.update({e.step: e.value for e in events.Scalars(tag)})
    if not by_step:
        return None
    steps = np.array(sorted(by_step))
    return steps, np.array([by_step[s] for s in steps], dtype=np.float64)


def curve_at(
    iterations: np.ndarray, curve: tuple[np.ndarray, np.ndarray] | None, window: int = 10
) -> np.ndarray | None:
    """(C,) the training curve averaged over the ``window`` logged iterations up to each
    checkpoint's iteration (NaN where none was logged); None without a curve."""
    if curve is None:
        return None
    its, values = curve
    out = []
    for it in iterations:
        near = values[(its <= it) & (its > it - window)]
        out.append(near.mean() if near.size else np.nan)
    return np.array(out)


def converged_from(
    iterations: np.ndarray,
    values: np.ndarray,
    window: float = 0.05,
    band: float = 0.05,
    from_above: bool = True,
) -> int:
    """The first iteration from which the smoothed training curve stays near its plateau.

    Rule: smooth with a centered moving average over ``window`` of the run (at least 5
    points, the window shrinking at the ends); the plateau is the mean of the last tenth of
    the run; the run has converged from the first iteration after which the smoothed curve
    stays within ``band`` of the curve's smoothed range of the plateau, from below and from
    above (a reward that fell to its plateau converged when it got there, not at its start).
    A curve that never settles converges at its last point. ``from_above=False``: the rule
    the study ran with, the smoothed end as the plateau and only falls below it counted.
    """
    it = np.asarray(iterations)
    v = np.asarray(values, dtype=np.float64)
    if it.size == 0 or it.size != v.size:
        raise ValueError("the training curve needs matching, non-empty iterations and values")
    width = max(5, round(window * v.size))
    if v.size < width:
        return int(it[0])
    kernel = np.ones(width)
    # a centered mean whose window shrinks at the ends, so the last points are not over-weighted
    smooth = np.convolve(v, kernel, mode="same") / np.convolve(np.ones_like(v), kernel, mode="same")
    margin = band * (smooth.max() - smooth.min())
    if from_above:  # the plateau's level from its last tenth: the end point alone is too noisy
        level = v[-max(width, v.size // 10) :].mean()
        outside = (smooth < level - margin) | (smooth > level + margin)
    else:
        outside = smooth < smooth[-1] - margin
    away = np.flatnonzero(outside)
    return int(it[0] if away.size == 0 else it[min(away[-1] + 1, it.size - 1)])


TAIL = 0.2
"""The share of the run (by logged iterations) whose drift decides whether it converged, and
the share of its checkpoints evaluated when it did not."""
UNCONVERGED_CANDIDATES = 5
"""At least this many of the last checkpoints are the candidates of a run that did not converge."""
MAX_DRIFT = 0.1
"""A run whose smoothed reward moves by more than this share of its range over :data:`TAIL`
is still rising or falling: not converged."""


@dataclass(frozen=True)
class Convergence:
    converged: bool
    from_iteration: int
    """The plateau's start (:func:`converged_from`)."""
    drift: float
    """Change of the reward over the last :data:`TAIL` of the run, in units of its smoothed range."""

    def describe(self) -> str:
        if self.converged:
            return f"converged at iteration {self.from_iteration}"
        trend = "rose" if self.drift > 0 else "fell"
        return (
            f"not converged: the reward {trend} by {abs(self.drift):.0%} of its range over the last "
            f"{TAIL:.0%} of the run (converged means under {MAX_DRIFT:.0%})"
        )


def convergence(
    iterations: np.ndarray, values: np.ndarray, window: float = 0.05, band: float = 0.05
) -> Convergence:
    """Whether the training curve has settled, and from where.

    Drift: the mean reward over the last ``window`` of the logged points minus its mean over
    the ``window`` points before the last :data:`TAIL` of the run, over the smoothed curve's
    range. Beyond :data:`MAX_DRIFT` either way the run is still moving (a curve that
    only falls, or still climbs, has no plateau to pick from), if the change is also beyond the
    curve's noise.
    """
    start = converged_from(iterations, values, window, band)
    v = np.asarray(values, dtype=np.float64)
    width = max(5, round(window * v.size))
    if v.size < 2 * width:
        return Convergence(True, start, 0.0)
    kernel = np.ones(width)
    smooth = np.convolve(v, kernel, mode="same") / np.convolve(np.ones_like(v), kernel, mode="same")
    spread = smooth.max() - smooth.min()
    t0 = int((1.0 - TAIL) * v.size)
    lo = max(0, min(t0 - width, v.size - 2 * width))  # the two windows never overlap
    change = v[-width:].mean() - v[lo : lo + width].mean()
    drift = 0.0 if spread == 0 else float(change / spread)
    # a flat but noisy curve has a range of its noise alone: a drift counts only where it is
    # also beyond the noise, 3 standard errors of a difference of two window means
    moving = abs(drift) > MAX_DRIFT and abs(change) > 3.0 * _window_noise(v, width)
    return Convergence(not moving, start, drift)


def _window_noise(v: np.ndarray, width: int) -> float:
    """Standard error of a difference of two ``width``-point means of the curve's last 40%.

    rsl_rl's mean reward is a running mean over episodes, so its noise is correlated over
    many iterations: the spread of whole windows' means (about a linear trend, which is the
    drift being tested) measures it where a per-point standard deviation would not."""
    tail = v[-max(4 * width, int(0.4 * v.size)) :]
    n = tail.size // width
    if n < 3:
        return float(np.std(v - np.convolve(v, np.ones(width) / width, mode="same")) * np.sqrt(2.0 / width))
    means = tail[-n * width :].reshape(n, width).mean(axis=1)
    x = np.arange(n)
    residual = means - np.polyval(np.polyfit(x, means, 1), x)
    return float(np.sqrt(2.0 * np.sum(residual**2) / max(n - 2, 1)))


class Candidates(NamedTuple):
    checkpoints: tuple[Checkpoint, ...]
    reason: str
    """How they were chosen, in a sentence."""
    converged: bool | None
    """Whether the training curve settled (:func:`convergence`); None when the convergence
    rule did not choose (``from_iter``, all checkpoints, no curve)."""


def choose_candidates(
    run: Run, from_iter: int | None = None, every: int | None = None, after_convergence: bool = True
) -> Candidates:
    """The checkpoints to evaluate, how they were chosen, and whether the run converged.

    ``from_iter`` overrides the convergence rule; ``every`` keeps every n-th of the rest
    (the last one always stays). Without a training curve, all checkpoints are candidates.
    """
    if every is not None and every < 1:
        raise RunError(f"every must be >= 1; got {every}")
    chosen = run.checkpoints
    converged = None
    if from_iter is not None:
        reason = f"from iteration {from_iter} (--from-iter)"
    elif after_convergence and (curve := training_curve(run)) is not None:
        state = convergence(*curve)
        converged = state.converged
        if state.converged:
            from_iter = state.from_iteration
            reason = (
                f"after convergence at iteration {from_iter} (smoothed {REWARD_TAG} within 5% of its range "
                "of its final value from there on)"
            )
        else:  # no plateau to pick from: the last part of the run, and say so
            last = chosen[-max(UNCONVERGED_CANDIDATES, round(TAIL * len(chosen))) :]
            from_iter = last[0].iteration
            reason = (
                f"{state.describe()}; the last {len(last)} checkpoints instead (the last {TAIL:.0%}, "
                f"at least {UNCONVERGED_CANDIDATES} where there are as many)"
            )
    else:
        from_iter = chosen[0].iteration
        reason = "all checkpoints" + ("" if not after_convergence else f" (no {REWARD_TAG} curve in the run)")
    chosen = tuple(c for c in chosen if c.iteration >= from_iter)
    if not chosen:
        raise RunError(
            f"{run.path}: no checkpoint at or after iteration {from_iter}; the last is {run.checkpoints[-1].iteration}"
        )
    if every:
        kept = chosen[::-1][::every][::-1]  # count back from the last checkpoint
        reason += f", one in every {every}"
        chosen = kept
    return Candidates(chosen, reason, converged)
