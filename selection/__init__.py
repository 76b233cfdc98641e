"""Selection: worst-case performance estimates and rankings from simulation samples.

Pure array code (numpy, scipy, torch; cvxpy for the reference solver). It never imports
Isaac Lab, a simulator or W&B: anyone with per-step performance samples can use it.

    >>> import numpy as np
    >>> from postconv.selection import worst_case
    >>> psi = np.random.default_rng(0).normal(size=(3, 1000))   # 3 checkpoints
    >>> worst_case(psi, k=[2.0, 4.0]).value.shape
    (3, 2)
"""

import importlib

# numpy only: imported now (a function and its module share a name, so the function is bound here)
from postconv.selection.agreement import Agreement, BestK, agreement, best_k, kendall, regret_at, spearman
from postconv.selection.discretize import Bins, discretize, quantile_edges
from postconv.selection.errors import SolverError

_HOME = {
    **dict.fromkeys(("WorstCase", "worst_case"), "estimators"),
    **dict.fromkeys(("Bootstrap", "Ranking", "bootstrap", "rank", "share_beating"), "ranking"),
}
"""Public name -> its module (torch), imported on first use: the light modules
(``postconv.selection.divergences``, the options the CLI checks) load without torch."""


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(f"postconv.selection.{_HOME[name]}"), name)
    raise AttributeError(f"module 'postconv.selection' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])


__all__ = [
    "Agreement",
    "BestK",
    "Bins",
    "Bootstrap",
    "Ranking",
    "SolverError",
    "WorstCase",
    "agreement",
    "best_k",
    "bootstrap",
    "discretize",
    "kendall",
    "quantile_edges",
    "rank",
    "regret_at",
    "share_beating",
    "spearman",
    "worst_case",
]
