"""Selection: worst-case performance estimates and rankings from simulation samples.

Pure array code (numpy, scipy, torch; cvxpy for the reference solver). It never imports
Isaac Lab, a simulator or W&B: anyone with per-step performance samples can use it.

    >>> import numpy as np
    >>> from postconv.selection import worst_case
    >>> psi = np.random.default_rng(0).normal(size=(3, 1000))   # 3 checkpoints
    >>> worst_case(psi, k=[2.0, 4.0]).value.shape
    (3, 2)
"""

from postconv.selection.agreement import Agreement, BestK, agreement, best_k, kendall, regret_at, spearman
from postconv.selection.discretize import Bins, discretize, quantile_edges
from postconv.selection.estimators import SolverError, WorstCase, worst_case
from postconv.selection.ranking import Bootstrap, Ranking, bootstrap, rank, share_beating

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
