"""The paper's route: the worst case as a conic program solved by cvxpy (Clarabel).

Kept as a reference solver and a test oracle, not for production sizes (about a second at
n = 10^4, where the fast solver takes milliseconds). The chi-square ball is the paper's
QCLP, ``q @ (w - 1)^2 <= 2k`` with rho = q * w, w >= 0. The KL ball is an exponential-cone
constraint, written two ways because Clarabel fails on some instances of each (measured:
about one random problem in ten at n = 1000): first ``q @ entr(w) >= -k`` scaled so that
w averages 1, then ``sum(rel_entr(rho, q)) <= k``. The first answer that cvxpy calls optimal,
or calls inaccurate but passes our own check of the constraints, wins.
"""

from __future__ import annotations

import numpy as np
import torch

from postconv.selection import divergences
from postconv.selection.errors import SolverError


class ReferenceSolverError(SolverError):
    """cvxpy did not return an optimal solution it vouches for."""


def _formulations(ps: np.ndarray, qs: np.ndarray, k: float, divergence):
    """Yield (problem, rho-expression) pairs of the same worst-case program: over the density
    ratio w = rho / q first (weights of order 1 keep the conic solver well scaled), then any
    the divergence adds."""
    import cvxpy as cp

    n = ps.size
    scaled = n * qs
    w = cp.Variable(n, nonneg=True)
    ball = divergence.cvxpy_ball(scaled, w, k, n)
    yield cp.Problem(cp.Minimize((scaled * ps) @ w / n), [scaled @ w == n, ball]), lambda: qs * w.value
    yield from divergence.cvxpy_more(ps, qs, k)


def solve_one(psi: np.ndarray, q: np.ndarray, k: float, divergence) -> tuple[float, np.ndarray]:
    """Minimize E_rho[psi] over distributions rho with D(rho || q) <= k. Returns (value, rho)."""
    import cvxpy as cp

    divergence = divergences.get(divergence)

    support = q > 0
    ps, qs = psi[support], q[support] / q[support].sum()
    rho = np.zeros_like(q)
    if k == 0:
        # The ball is the single point q: no Slater point, and conic solvers report
        # "inaccurate" on it, so the answer is written down rather than solved for.
        rho[support] = qs
        return float(qs @ ps), rho
    statuses = []
    for problem, solution in _formulations(ps, qs, k, divergence):
        try:
            problem.solve(solver=cp.CLARABEL)
        except cp.error.SolverError:
            statuses.append("solver failed")
            continue
        if problem.status == cp.OPTIMAL or (
            problem.status == cp.OPTIMAL_INACCURATE and _in_ball(np.asarray(solution()), qs, k, divergence)
        ):
            rho[support] = np.asarray(solution())
            return float(rho[support] @ ps), rho
        statuses.append(problem.status)
    raise ReferenceSolverError(
        f"cvxpy/Clarabel found no optimal solution for a {divergence.name} problem with {ps.size} atoms "
        f"and k = {k} (statuses: {', '.join(statuses)}); use solver='fast', which is exact here"
    )


def _in_ball(rho: np.ndarray, q: np.ndarray, k: float, divergence) -> bool:
    """Check an "inaccurate" answer ourselves: a distribution, within the ball to 1e-6."""
    if rho is None or np.any(rho < -1e-9) or abs(rho.sum() - 1.0) > 1e-7:
        return False
    return divergence.of(np.clip(rho, 0.0, None), q) <= k + 1e-6 * max(1.0, k)


def solve_cvxpy(
    signed: torch.Tensor, q: torch.Tensor | None, ks: np.ndarray, divergence
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batched front end: (value, multiplier, status, mean) as the fast solver, and rho (B, K, n).

    The multiplier is not recovered from cvxpy's duals: it is NaN, and status is the
    interior code 0 for every pair.
    """
    x = signed.detach().to(torch.float64).cpu().numpy()
    b, n = x.shape
    qq = np.full((b, n), 1.0 / n) if q is None else np.broadcast_to(q.to(torch.float64).cpu().numpy(), (b, n))
    value = np.empty((b, ks.size))
    rho = np.empty((b, ks.size, n))
    for i in range(b):
        for j, k in enumerate(ks):
            value[i, j], rho[i, j] = solve_one(x[i], qq[i] / qq[i].sum(), float(k), divergence)
    mean = (qq * x).sum(1) / qq.sum(1)
    return value, np.full((b, ks.size), np.nan), np.zeros((b, ks.size), np.int8), mean, rho
