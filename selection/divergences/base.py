r"""What a divergence supplies to the worst-case solvers.

The worst case within radius k of q is :math:`V_k = \min_{D(\rho\|q) \le k} E_\rho[\psi]`. Every
solver here works on the shifted signed samples :math:`x = \psi - \min\psi \ge 0` (rewards: a
small x is bad) and a one-dimensional dual with one multiplier per (checkpoint, k). A divergence
says: where the closed forms hold, what one streaming pass sums, how its dual is solved and
evaluated, what the worst-case distribution is, its conic form for the cvxpy reference, and its
node sums for the grouped bootstrap. Shapes: B checkpoints, K radii, n samples, R rows, L nodes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np
import torch


class Divergence(ABC):
    """One divergence D(rho || q). Subclasses set :attr:`name` and implement every method."""

    name: str
    powers: int
    """Basis powers q * x^j, j < powers, a streaming pass multiplies its terms with."""
    sums: int
    """Sums one pass returns per (row, radius)."""

    # -- closed forms ----------------------------------------------------------------------------

    @abstractmethod
    def at_edge(self, share: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Where the ball holds q restricted to the minimizers (the value is the minimum):
        ``share`` is q's mass at the minimum, broadcast against the radii ``k``."""

    def edge_share(self, k: float) -> float:
        """The least share of q's mass on the minimizers at which the ball of radius ``k`` still
        holds q restricted to them (e^-k for KL, 1 / (1 + 2k) for the paper's chi-square): the
        worst case of n equally weighted samples may rest on its worst ceil(n * edge_share)
        alone. Found by bisection on :meth:`at_edge` over log(share) (relative precision at
        any k; shares below 1e-300, KL beyond k = 690, come back as 1e-300), so every
        divergence has it."""
        low, high = math.log(1e-300), 0.0  # the ball always holds q itself: share 1 is at the edge
        for _ in range(100):
            mid = 0.5 * (low + high)
            if bool(self.at_edge(np.float64(math.exp(mid)), np.float64(k))):
                high = mid
            else:
                low = mid
        return math.exp(high)

    # -- the fast solver ---------------------------------------------------------------------------

    def neutral(self, j: int) -> float:
        """The value of sum ``j`` for rows a pass skips (masked out by the solver)."""
        return 1.0

    @abstractmethod
    def reduce(
        self, basis: torch.Tensor, xc: torch.Tensor, p: torch.Tensor, e: torch.Tensor, total: torch.Tensor
    ):
        """Add one chunk's sums to ``total`` (R, K, sums): basis (R, powers, c) = q x^j, xc (R, c)
        the shifted samples, p (R, K, 1) the multipliers, e (R, K, c) scratch."""

    @abstractmethod
    def moments_small(
        self, basis: np.ndarray, x: np.ndarray, p: np.ndarray, scale: float
    ) -> tuple[np.ndarray, ...]:
        """The same sums on numpy arrays: basis (R, powers, n), x (R, 1, n), p (R, K, 1)."""

    @abstractmethod
    def solve(self, rows, kgrid: np.ndarray, active: np.ndarray, tol: np.ndarray, start: np.ndarray | None):
        """(value, multiplier) (B, K) of the interior pairs ``active``, in x's units."""

    def to_psi_units(self, mult: np.ndarray, low: np.ndarray, status: np.ndarray) -> np.ndarray:
        """The solver's multipliers (B, K) as reported, given each row's minimum ``low`` (B, 1)."""
        return mult

    def for_cost(self, mult: np.ndarray) -> np.ndarray:
        """The multipliers of a cost (the solver worked on minus psi)."""
        return mult

    def rebase(self, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """Multipliers measured from a minimum ``shift`` (B, 1) higher (a subsample's)."""
        return mult

    # -- the dual at a multiplier, in float64 -----------------------------------------------------

    def dual_params(self, mult: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """The multipliers (B, K) as :meth:`dual_term` reads them."""
        return mult

    @abstractmethod
    def dual_term(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """(B, K, c) per-sample terms of the dual's expectation: x (B, 1, c), params (B, K, 1)."""

    @abstractmethod
    def dual_value(
        self, low: torch.Tensor, params: torch.Tensor, total: torch.Tensor, k: torch.Tensor
    ) -> torch.Tensor:
        """(B, K) the dual objective from the expectation ``total`` of the terms."""

    # -- the worst-case distribution ----------------------------------------------------------------

    @abstractmethod
    def tilt(self, q: torch.Tensor, x: torch.Tensor, mult: torch.Tensor, low: torch.Tensor, interior: torch.Tensor,
             sense: str) -> torch.Tensor:  # fmt: skip
        """(B, K, n) the worst-case weights of the interior pairs: q (B, n), x (B, n), mult (B, K)
        as reported, low (B, 1) in signed units."""

    # -- the cvxpy reference ------------------------------------------------------------------------

    @abstractmethod
    def cvxpy_ball(self, scaled: np.ndarray, w, k: float, n: int):
        """The ball as a cvxpy constraint on the density ratio w = rho / q (``scaled`` = n q)."""

    def cvxpy_more(self, ps: np.ndarray, qs: np.ndarray, k: float):
        """Further (problem, rho-expression) formulations to try if the first fails."""
        return iter(())

    @abstractmethod
    def of(self, rho: np.ndarray, q: np.ndarray) -> float:
        """D(rho || q) of two distributions on the same atoms."""

    # -- the grouped bootstrap ----------------------------------------------------------------------

    from_group_minimum: bool = False
    """Node sums are taken relative to each group's minimum (and rescaled per replicate)."""

    @abstractmethod
    def node_scale(self, param: torch.Tensor) -> torch.Tensor:
        """What a node's multiplier ``param`` (B, L, 1) becomes in :meth:`node_terms`."""

    @abstractmethod
    def node_terms(self, xc: torch.Tensor, scale: torch.Tensor, q: torch.Tensor | None, e: torch.Tensor,
                   f: torch.Tensor) -> tuple:  # fmt: skip
        """(terms of sum 0, terms of sum 1), (B, L, c) each, written into e and f: xc (B, 1, c)
        the samples, ``scale`` :meth:`node_scale`'s, q (B, 1, c) their weights or None."""

    def regroup(self, g0: np.ndarray, g1: np.ndarray, m: np.ndarray, a: float, param: np.ndarray) -> tuple:
        """Per-group node sums (G, L) as a replicate with minimum ``a`` sums them, from sums the
        groups took relative to their own minima ``m`` (G, 1) (see :attr:`from_group_minimum`)."""
        return g0, g1

    def node_multiplier(self, mult: np.ndarray, sense: str, low: np.ndarray) -> np.ndarray:
        """A reported multiplier (B, K) as a node's (positive, in x's units)."""
        return mult

    @abstractmethod
    def node_duals(self, param, s0, s1, kk, edge_x) -> tuple[np.ndarray, np.ndarray]:
        """Dual values and slopes in log multiplier at the nodes, from the replicates' sums."""
