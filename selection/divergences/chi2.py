r"""Chi-square, the paper's quadratic form: :math:`D(\rho\|q) = \tfrac12 \sum_j (\rho_j-q_j)^2/q_j`, \rho >= 0.

:math:`V_k = \max_\eta\ \eta - \sqrt{1+2k}\,\sqrt{\textstyle\sum_j q_j (\eta-\psi_j)_+^2}` (dual as in
Duchi and Namkoong) and :math:`\rho_j \propto q_j(\eta^*-\psi_j)_+`; while :math:`\eta^* \ge \max\psi`
this is :math:`\mathrm{mean}-\sqrt{2k\,\mathrm{Var}_q\psi}`. The ball holds q restricted to the
minimizers once :math:`(1+2k)\,q(\arg\min) \ge 1`.
"""

from __future__ import annotations

import numpy as np
import torch

from postconv.selection._dual import (
    _MAX_ITER,
    _ROUNDING,
    INTERIOR,
    MINIMUM,
    _eps,
    _keep_in_bracket,
    _no_convergence,
    _pass,
    _Rows,
)
from postconv.selection.divergences.base import Divergence
from postconv.selection.errors import SolverError


class ChiSquare(Divergence):
    """The chi-square ball; multipliers are thresholds eta in psi's units (rho ~ q (eta - psi)_+)."""

    name = "chi2"
    powers = 1
    sums = 3

    def at_edge(self, share, k):
        return (1.0 + 2.0 * k) * share >= 1.0

    def reduce(self, basis, xc, p, e, total):
        # sums of q d, q d^2 and q [d > 0] with d = (eta - x)_+
        torch.sub(p, xc[:, None, :], out=e)
        e.clamp_min_(0.0)
        total[..., 0] += torch.bmm(basis, e.transpose(1, 2))[:, 0]
        total[..., 2] += torch.bmm(basis, torch.sign(e).transpose(1, 2))[:, 0]
        e.square_()
        total[..., 1] += torch.bmm(basis, e.transpose(1, 2))[:, 0]

    def moments_small(self, basis, x, p, scale):
        d = np.maximum(p - x, 0)
        weight = basis[:, :1]  # (R, 1, n): q, or ones
        sums = [np.matmul(weight, a.transpose(0, 2, 1))[:, 0] for a in (d, d * d, np.sign(d))]
        return tuple(v.astype(np.float64) * scale for v in sums)

    def solve(
        self,
        rows: _Rows,
        kgrid: np.ndarray,
        active: np.ndarray,
        tol: np.ndarray,
        start: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Maximizer of g(eta) = eta - r * sqrt(E_q[(eta - x)_+^2]), r = sqrt(1 + 2k).

        g is concave: g' = 1 - r A / sqrt(B) with A = E_q[(eta - x)_+], B = E_q[(eta - x)_+^2],
        g'' = -r (Q B - A^2) / B^1.5 with Q = q(x < eta). While eta >= max x the root has the
        closed form eta = mean + sd / sqrt(2k), value mean - sd * sqrt(2k).
        """
        b, kk = kgrid.shape
        r = np.sqrt(1.0 + 2.0 * kgrid)
        sd = np.sqrt(rows.var)[:, None]
        top = np.broadcast_to(rows.top[:, None], (b, kk))
        closed_eta = rows.mean[:, None] + sd / np.sqrt(2.0 * np.maximum(kgrid, 1e-300))
        closed = active & (closed_eta >= top)
        value = np.where(closed, rows.mean[:, None] - sd * np.sqrt(2.0 * kgrid), 0.0)
        eta = np.where(closed, closed_eta, np.minimum(closed_eta, top))
        if start is not None:
            eta = np.where(~closed & np.isfinite(start) & (start > 0) & (start < top), start, eta)
        lo = np.zeros((b, kk))
        hi = top.copy()
        eps = _eps(rows)
        prev_d1 = np.full((b, kk), np.inf)
        todo = active & ~closed
        for _ in range(_MAX_ITER):
            if not todo.any():
                break
            a, bb, mass = _pass(rows, todo, eta, self)
            root_b = np.sqrt(bb)
            ratio = root_b / a  # sqrt(B)/A; equals r at the optimum
            valid = bb > 0
            value = np.where(todo & valid, eta - r * root_b, value)
            gap = np.abs(root_b * (r - ratio))  # E_rho[x] - g(eta) for rho ~ q (eta - x)_+
            off_ball = np.abs(0.5 * (ratio**2 - 1.0) - kgrid)  # chi2(rho) - k
            done = (
                valid
                & (gap <= tol[:, None])
                & (off_ball <= _ROUNDING * eps * (1.0 + ratio**2) + 1e-9 * kgrid)
            )
            d1 = 1.0 - r * a / root_b
            d2 = -r * (mass * bb - a**2) / bb**1.5
            lo = np.where(todo & (~valid | (d1 > 0)), eta, lo)
            hi = np.where(todo & valid & (d1 < 0), eta, hi)
            # A pass reads eta in the samples' dtype: once the bracket is a few of its steps wide
            # (large k puts the root near the top sample, where float32 steps are ~5e-7 and the
            # gap jumps across tol between neighbours), no pass can narrow it. g is concave with
            # its maximum inside the bracket, so the dual there is within sup|g''| (hi - lo)^2 of
            # the optimum (~1e-10 measured); a lower bound either way.
            resolved = valid & (hi - lo <= 4.0 * eps * np.maximum(np.abs(eta), 1e-300))
            done = done | resolved
            stalled = np.abs(d1) > 0.5 * prev_d1
            prev_d1 = np.where(todo, np.where(valid, np.abs(d1), np.inf), prev_d1)
            nxt = np.where(valid & ~stalled, eta - d1 / d2, np.nan)
            move = todo & ~done
            eta = np.where(move, _keep_in_bracket(nxt, lo, hi), eta)
            todo = move
        if todo.any():
            raise SolverError(_no_convergence(self.name, todo))
        return value, eta

    def to_psi_units(self, mult, low, status):
        # eta in psi's units; rho = q at k = 0 means an infinite threshold, and the minimum's
        # threshold is the minimum itself
        mult = np.where(status == INTERIOR, mult + low, mult)
        return np.where(status == MINIMUM, low, mult)

    def for_cost(self, mult):
        return -mult

    def rebase(self, mult, shift):
        return mult + shift

    def dual_params(self, mult, low):
        return mult - low  # eta above the minimum

    def dual_term(self, x, params):
        return torch.clamp(params - x, min=0.0) ** 2

    def dual_value(self, low, params, total, k):
        return params + low - torch.sqrt(1.0 + 2.0 * k) * torch.sqrt(total)

    def tilt(self, q, x, mult, low, interior, sense):
        eta = mult if sense == "reward" else -mult
        eta = torch.where(interior, eta - low, 0.0)
        rho = q[:, None, :] * torch.clamp_min(eta[..., None] - x[:, None, :], 0.0)
        return rho / rho.sum(-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)

    def cvxpy_ball(self, scaled, w, k, n):
        import cvxpy as cp

        return scaled @ cp.square(w - 1.0) <= 2.0 * k * n

    def of(self, rho, q):
        return float(0.5 * np.sum((rho - q) ** 2 / q))

    def node_scale(self, param):
        return param

    def node_terms(self, xc, scale, q, e, f):
        torch.sub(scale, xc, out=e).clamp_min_(0.0)  # (eta - x)_+
        torch.mul(e, e, out=f)
        if q is not None:
            e.mul_(q)
            f.mul_(q)
        return e, f

    def node_multiplier(self, mult, sense, low):
        return (mult if sense == "reward" else -mult) - low[:, None]  # eta above the minimum, signed units

    def node_duals(self, param, s0, s1, kk, edge_x):
        r = np.sqrt(1.0 + 2.0 * kk)
        root_b = np.sqrt(s1)
        return param - r * root_b, param * (1.0 - r * s0 / root_b)
