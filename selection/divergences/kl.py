r"""Kullback-Leibler: :math:`D(\rho\|q) = \sum_j \rho_j \log(\rho_j / q_j)` (Hu and Hong, 2012).

:math:`V_k = \max_{\lambda>0} -\lambda \log \sum_j q_j e^{-\psi_j/\lambda} - \lambda k`; the worst
case is the exponential tilt :math:`\rho_j \propto q_j e^{-\psi_j/\lambda^*}`, whose KL is k. The
ball holds q restricted to the minimizers once :math:`k \ge -\log q(\arg\min)`.
"""

from __future__ import annotations

import numpy as np
import torch

from postconv.selection._dual import (
    _MAX_ITER,
    _ROUNDING,
    _TINY_K,
    _eps,
    _keep_in_bracket,
    _no_convergence,
    _pass,
    _Rows,
)
from postconv.selection.divergences.base import Divergence
from postconv.selection.errors import SolverError


class KL(Divergence):
    """The exact KL ball; multipliers are temperatures lambda (inf at k = 0, 0 at the minimum)."""

    name = "kl"
    powers = 4
    sums = 4
    from_group_minimum = True

    def at_edge(self, share, k):
        return k >= -np.log(np.maximum(share, 1e-300))

    def neutral(self, j: int) -> float:
        return 1.0 if j == 0 else 0.0

    def reduce(self, basis, xc, p, e, total):
        # e^(-x/lambda) against the basis [q, q x, q x^2, q x^3]: an (R, m, c) @ (R, c, K)
        # product, the long axis contiguous in both operands (~3x faster than the other layout)
        torch.mul(xc[:, None, :], -p, out=e)
        e.exp_()
        total += torch.bmm(basis, e.transpose(1, 2)).transpose(1, 2)

    def moments_small(self, basis, x, p, scale):
        e = torch.exp(torch.from_numpy(x * -p)).numpy()
        total = np.matmul(basis, e.transpose(0, 2, 1)).transpose(0, 2, 1)  # (R, K, 4)
        return tuple(total[..., j].astype(np.float64) * scale for j in range(4))

    def solve(
        self,
        rows: _Rows,
        kgrid: np.ndarray,
        active: np.ndarray,
        tol: np.ndarray,
        start: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Root of f(u) = KL(rho_lambda || q) - k in u = log(lambda): safeguarded Halley steps.

        With t = 1/lambda and kappa_j the cumulants of x under the tilt rho_lambda,
        KL = -t kappa_1 - log M, f' = -t^2 kappa_2 and f'' = 2 t^2 kappa_2 - t^3 kappa_3
        (derivatives in u). Halley's cubic convergence matters here: every step is a pass over
        all samples. The reported value is the dual h(lambda) = -lambda log M - lambda k, a
        lower bound on V_k for every lambda and equal to it at the root.
        """
        b, kk = kgrid.shape
        sd = np.sqrt(np.maximum(rows.var, 1e-300))[:, None]
        u = -np.log(_skew_aware_start(rows, kgrid))
        if start is not None:
            u = np.where(np.isfinite(start) & (start > 0), np.log(np.where(start > 0, start, 1.0)), u)
        lo = np.full((b, kk), -np.inf)
        # KL(rho_lambda) = int_0^t s Var_s ds <= t^2 top^2 / 8 (Var of x in [0, top] is at most
        # top^2 / 4), so lambda = top / sqrt(8k) has KL <= k: the root lies below it.
        hi = np.log(rows.top[:, None] / np.sqrt(8.0 * np.maximum(kgrid, 1e-300)))
        u = np.minimum(u, hi)
        # Below _TINY_K the dual cannot resolve KL = k in floating point (log M has absolute
        # error ~eps); there V_k = mean - sd * sqrt(2k) + O(k), exact to well below tolerance.
        tiny = active & (kgrid <= _TINY_K)
        value = np.where(tiny, rows.mean[:, None] - sd * np.sqrt(2.0 * kgrid), 0.0)
        u = np.where(tiny, np.log(np.broadcast_to(sd, (b, kk)) / np.sqrt(2.0 * np.maximum(kgrid, 1e-300))), u)
        eps = _eps(rows)
        reach = np.full((b, kk), 4.0)
        prev_f = np.full((b, kk), np.inf)
        todo = active & ~tiny
        for _ in range(_MAX_ITER):
            if not todo.any():
                break
            lam = np.exp(u)
            t = 1.0 / lam
            m0, m1, m2, m3 = _pass(rows, todo, t, self)
            e1, e2, e3 = m1 / m0, m2 / m0, m3 / m0
            k2 = np.maximum(e2 - e1**2, 0.0)
            k3 = e3 - 3.0 * e1 * e2 + 2.0 * e1**3
            log_m = np.log(m0)
            f = -t * e1 - log_m - kgrid  # KL(rho_lambda || q) - k
            # KL is a difference of terms of size t*E[x] and log M: it cannot be resolved
            # below their rounding error. Converged: the tilt is on the ball (up to rounding)
            # and attains the dual value; the first test matters as lambda -> 0, where the
            # primal-dual gap lambda * |f| vanishes off the ball.
            kl_error = _ROUNDING * eps * (1.0 + t * e1 + np.abs(log_m))
            # Where that rounding, scaled by a large lambda (small k), swamps the tolerance the
            # dual value is noise: report the tilt's own expectation, which is attained.
            dual = -lam * log_m - lam * kgrid
            value = np.where(todo, np.where(lam * kl_error > tol[:, None], e1, dual), value)
            done = (np.abs(f) <= kl_error + 1e-9 * kgrid) & (lam * np.abs(f) <= tol[:, None] + lam * kl_error)
            lo = np.where(todo & (f > 0), u, lo)
            hi = np.where(todo & (f < 0), u, hi)
            d1 = -(t**2) * k2
            d2 = 2.0 * t**2 * k2 - t**3 * k3
            step = np.minimum(np.maximum(-2.0 * f * d1 / (2.0 * d1**2 - f * d2), -4.0), 4.0)
            # Bisect when the last step did not halve |f| (Halley can stall where KL is flat).
            nxt = np.where(np.abs(f) > 0.5 * prev_f, np.nan, u + step)
            prev_f = np.where(todo, np.abs(f), prev_f)
            move = todo & ~done
            u = np.where(move, _keep_in_bracket(nxt, lo, hi, reach, move), u)
            todo = move
        if todo.any():
            raise SolverError(_no_convergence(self.name, todo))
        return value, np.exp(u)

    def dual_term(self, x, params):
        return torch.exp(-x / params)

    def dual_value(self, low, params, total, k):
        return low - params * torch.log(total) - params * k

    def tilt(self, q, x, mult, low, interior, sense):
        t = torch.where(interior, 1.0 / mult, 0.0)
        logits = torch.log(q)[:, None, :] - t[..., None] * x[:, None, :]
        return torch.softmax(logits, dim=-1)

    def cvxpy_ball(self, scaled, w, k, n):
        import cvxpy as cp

        return scaled @ cp.entr(w) >= -k * n

    def cvxpy_more(self, ps, qs, k):
        import cvxpy as cp

        rho = cp.Variable(ps.size, nonneg=True)
        problem = cp.Problem(cp.Minimize(ps @ rho), [cp.sum(rho) == 1, cp.sum(cp.rel_entr(rho, qs)) <= k])
        yield problem, lambda: rho.value

    def of(self, rho, q):
        pos = rho > 0
        return float(np.sum(rho[pos] * np.log(rho[pos] / q[pos])))

    def node_scale(self, param):
        return -1.0 / param

    def node_terms(self, xc, scale, q, e, f):
        torch.mul(xc, scale, out=e).exp_()  # e^(-x/lambda), x from the group's minimum: at most 1
        if q is not None:
            e.mul_(q)
        torch.mul(e, xc, out=f)
        return e, f

    def regroup(self, g0, g1, m, a, lam):
        # a replicate's sums from its minimum a, the groups' from their own minima m >= a:
        # e^(-(x - a)/lambda) = e^(-(m - a)/lambda) e^(-(x - m)/lambda) and x - a = (x - m) + (m - a);
        # groups below a are not drawn, groups without weight (m = inf) add nothing
        with np.errstate(over="ignore", invalid="ignore"):
            scale = np.where((m >= a) & np.isfinite(m), np.exp(-(m - a) / lam), 0.0)
            m = np.where(np.isfinite(m), m, a)
        return scale * g0, scale * (g1 + (m - a) * g0)

    def node_duals(self, param, s0, s1, kk, edge_x):
        # with M = E[e^(-(x - a)/lambda)]: h = a - lambda log M - lambda k, KL = -(E_rho[x] - a)/lambda - log M
        log_m = np.log(s0)
        kl = -(s1 / s0) / param - log_m
        h = edge_x[..., None, None] - param * log_m - param * kk
        return h, param * (kl - kk)


def _skew_aware_start(rows: _Rows, kgrid: np.ndarray) -> np.ndarray:
    """A starting t = 1/lambda from the cumulant expansion KL(t) = t^2 k2 / 2 - t^3 k3 / 3 + O(t^4).

    The Gaussian answer t = sqrt(2k / k2) ignores skew, which per-step rewards with a bad
    tail have plenty of; a few scalar Newton steps on the cubic save passes over the data.
    Where the cubic has no root (k past its maximum) the Gaussian answer stands.
    """
    k2 = np.maximum(rows.var, 1e-300)[:, None]
    k3 = rows.third[:, None]
    gauss = np.sqrt(2.0 * np.maximum(kgrid, 1e-300) / k2)
    t = gauss
    for _ in range(4):
        f = t**2 * k2 / 2.0 - t**3 * k3 / 3.0 - kgrid
        t = t - f / (t * k2 - t**2 * k3)
    ok = np.isfinite(t) & (t > 0) & (t < k2 / np.maximum(k3, 1e-300))  # left of the cubic's maximum
    return np.where(ok, t, gauss)
