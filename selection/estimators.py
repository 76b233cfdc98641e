r"""Worst-case expected performance over a divergence ball around the simulation distribution.

For samples :math:`\psi_1..\psi_n` with probabilities :math:`q` (the empirical stationary
distribution of a policy in simulation), the worst case within radius :math:`k` is

.. math::  V_k = \min_{\rho \in \Delta,\ D(\rho\,\|\,q) \le k} \sum_j \rho_j \psi_j .

The divergences live in :mod:`postconv.selection.divergences` (one class each, a registry of
names); two come with postconv, each solved exactly through a one-dimensional concave dual:

``"kl"``  (Hu and Hong, 2012)
    :math:`V_k = \max_{\lambda>0} -\lambda \log \sum_j q_j e^{-\psi_j/\lambda} - \lambda k`.
    The worst case is the exponential tilt :math:`\rho_j \propto q_j e^{-\psi_j/\lambda^*}`;
    the dual's derivative is :math:`\mathrm{KL}(\rho_\lambda\|q) - k`, so the optimum is the
    tilt whose KL equals k.

``"chi2"``  (the paper's quadratic form, a QCLP; dual as in Duchi and Namkoong)
    :math:`D(\rho\|q) = \tfrac12 \sum_j (\rho_j-q_j)^2/q_j` with :math:`\rho \ge 0`;
    :math:`V_k = \max_\eta\ \eta - \sqrt{1+2k}\,\sqrt{\textstyle\sum_j q_j (\eta-\psi_j)_+^2}`
    and :math:`\rho_j \propto q_j(\eta^*-\psi_j)_+`. While :math:`\eta^* \ge \max\psi` this is
    :math:`\mathrm{mean}-\sqrt{2k\,\mathrm{Var}_q\psi}`.

Edge cases are exact: k = 0 gives the mean (:math:`\rho = q`); once the ball holds the
distribution :math:`q` restricted to the minimizers (KL: :math:`k \ge -\log q(\arg\min)`;
chi2: :math:`(1+2k)\,q(\arg\min) \ge 1`) the value is the minimum over the support. Atoms with
zero weight are outside the support and never carry worst-case mass.

The fast solver runs safeguarded Halley (KL) and Newton (chi2) iterations on the duals
(bracketed, falling back to bisection), batched over checkpoints and radii, streaming over
samples in chunks so memory stays bounded. The reported value is the dual objective at the final multiplier, which is a
valid lower bound on :math:`V_k` for any multiplier and equals it at the optimum; the
returned weights attain it to the solver tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from postconv.selection import _validate, divergences
from postconv.selection._dual import INTERIOR, MEAN, MINIMUM, _Problem, _solve_fast_any_precision
from postconv.selection.source import SampleSource

Sense = Literal["reward", "cost"]
Solver = Literal["fast", "cvxpy"]


@dataclass(frozen=True)
class WorstCase:
    """Worst-case estimates for B checkpoints and K radii.

    Array shapes follow the inputs: a batch axis only when psi was 2-D, a k axis only when
    k was a sweep. Below, ``[B]`` and ``[K]`` mark those optional axes.
    """

    value: np.ndarray
    """Worst-case expectation of psi, shape [B][K]. For ``sense="cost"`` the worst case is
    the largest expectation in the ball."""
    mean: np.ndarray
    """Plain expectation of psi under q (the direct simulation estimate), shape [B]."""
    extreme: np.ndarray
    """The worst sample over the support (the smallest psi; the largest for costs), shape
    [B]: the value of every radius past the ball's edge (status 2)."""
    multiplier: np.ndarray
    """Optimal dual variable, shape [B][K]. KL: the temperature lambda of the tilt
    (inf at k = 0, 0 when the value is the minimum). chi2: the threshold eta in psi's units,
    rho proportional to q * (eta - psi)_+ for rewards, q * (psi - eta)_+ for costs."""
    status: np.ndarray
    """Per pair: 0 interior solution, 1 the mean (k = 0 or constant psi), 2 the extreme
    over the support (the ball holds q restricted to the minimizers), shape [B][K]."""
    k: np.ndarray
    """The radii, shape [K]."""
    divergence: str
    sense: str
    _psi: torch.Tensor | None = field(repr=False)  # None: streamed from a sample source
    _q: torch.Tensor | None = field(repr=False)
    _squeeze_batch: bool = field(repr=False)
    _squeeze_k: bool = field(repr=False)
    _rho: np.ndarray | None = field(default=None, repr=False)  # (B, K, n) from the cvxpy solver

    @property
    def weights(self) -> np.ndarray:
        """The worst-case distribution rho, shape [B][K] x n, computed on access.

        It is B * K * n floats: for large batches ask for a slice of the samples instead.
        """
        if self._rho is not None:
            return self._squeezed(self._rho)
        if self._psi is None:
            raise ValueError(
                "the weights of a solve streamed from a sample source are not kept (B x K x n floats); "
                "solve the checkpoints you need in memory: worst_case(psi_array, weights, k)"
            )
        psi = self._psi.to(torch.float64)
        signed = psi if self.sense == "reward" else -psi
        n = signed.shape[-1]
        q = (
            torch.full_like(signed, 1.0 / n)
            if self._q is None
            else self._q.to(torch.float64).expand_as(signed)
        )
        support = q > 0
        low = torch.where(support, signed, torch.inf).amin(dim=-1, keepdim=True)
        x = torch.where(support, signed - low, 0.0)  # (B, n), >= 0 on the support
        mult = torch.as_tensor(_unsqueeze(self.multiplier, self), dtype=torch.float64, device=psi.device)
        status = torch.as_tensor(_unsqueeze(self.status, self), device=psi.device)
        rho = divergences.get(self.divergence).tilt(q, x, mult, low, status == INTERIOR, self.sense)
        at_min = (x == 0) & support
        rho_min = q * at_min
        rho_min = rho_min / rho_min.sum(-1, keepdim=True)
        rho = torch.where((status == MEAN)[..., None], q[:, None, :], rho)
        rho = torch.where((status == MINIMUM)[..., None], rho_min[:, None, :], rho)
        return self._squeezed(rho.cpu().numpy())

    def _squeezed(self, rho: np.ndarray) -> np.ndarray:
        if self._squeeze_k:
            rho = rho[:, 0]
        return rho[0] if self._squeeze_batch else rho


def _unsqueeze(a: np.ndarray, r: WorstCase) -> np.ndarray:
    a = np.asarray(a)
    if r._squeeze_k:
        a = a[..., None]
    if r._squeeze_batch:
        a = a[None]
    return a


def worst_case(
    psi,
    weights=None,
    k=2.0,
    divergence: str = "kl",
    sense: Sense = "reward",
    solver: Solver = "fast",
) -> WorstCase:
    r"""Worst-case expectation of psi over distributions within radius k of q.

    Args:
        psi: performance samples, shape (n,) for one checkpoint or (B, n) for B at once.
            numpy or torch; a floating torch tensor is solved in its dtype on its device.
        weights: q up to normalization, shape (n,) (shared) or psi's shape; uniform when
            None. Zero-weight atoms are outside the support (used to pad ragged batches).
        k: radius, a scalar or a 1-D sweep (K,), each >= 0.
        divergence: a registered name (:func:`postconv.selection.divergences.names`):
            ``"kl"`` (exact KL) or ``"chi2"`` (the paper's QCLP form) come with postconv.
        sense: ``"reward"`` (larger is better; the worst case is the minimum expectation)
            or ``"cost"`` (smaller is better; the worst case is the maximum).
        solver: ``"fast"`` (the exact 1-D duals, batched) or ``"cvxpy"`` (the paper's
            route through a conic solver; a reference, slow beyond ~10^4 samples).

    Returns:
        A :class:`WorstCase` with ``value`` of shape [B][K], ``mean``, ``multiplier``,
        ``status`` and lazily computed ``weights``.

    Raises:
        ValueError: on NaN/inf in psi, k < 0 or NaN, negative or all-zero weights, shape
            mismatches, or an unknown divergence, sense or solver.
    """
    _validate.choice("divergence", divergence, divergences.names())
    div = divergences.get(divergence)
    _validate.choice("sense", sense, _validate.SENSES, " (reward: larger is better; cost: smaller is better)")
    _validate.choice("solver", solver, _validate.SOLVERS)
    if isinstance(psi, SampleSource):
        return _worst_case_streamed(psi, weights, k, divergence, sense, solver)
    x = _validate.samples(psi)
    q = _validate.weights(weights, x)
    ks = _validate.radii(k)
    squeeze_batch, squeeze_k = x.ndim == 1, np.ndim(k) == 0
    x2 = x.reshape(1, -1) if squeeze_batch else x
    q2 = None if q is None else (q.reshape(1, -1) if q.ndim == 1 else q)
    signed = x2 if sense == "reward" else -x2

    rho = None
    if solver == "cvxpy":
        from postconv.selection.reference import solve_cvxpy

        value, mult, status, mean, rho = solve_cvxpy(signed, q2, ks, div)
        support = torch.ones_like(signed, dtype=torch.bool) if q2 is None else q2.expand_as(signed) > 0
        low = torch.where(support, signed, torch.inf).amin(-1).double().cpu().numpy()
    else:
        value, mult, status, mean, low = _solve_fast_any_precision(_Problem(signed, q2), ks, div)
    if sense == "cost":
        value, mean, low = -value, -mean, -low
        mult = div.for_cost(mult)

    def shape(a: np.ndarray, has_k: bool = True) -> np.ndarray:
        if has_k and squeeze_k:
            a = a[:, 0]
        return a[0] if squeeze_batch else a

    return WorstCase(
        value=shape(value),
        mean=shape(mean, has_k=False),
        extreme=shape(low, has_k=False),
        multiplier=shape(mult),
        status=shape(status),
        k=ks,
        divergence=divergence,
        sense=sense,
        _psi=x2,
        _q=q2,
        _squeeze_batch=squeeze_batch,
        _squeeze_k=squeeze_k,
        _rho=rho,
    )


def _worst_case_streamed(
    source: SampleSource, weights, k, div_name: str, sense: str, solver: str
) -> WorstCase:
    """:func:`worst_case` on a sample source: a few streaming passes, memory of one chunk."""
    from postconv.selection._streamed import StreamedProblem

    if weights is not None:
        raise ValueError("a sample source carries its own weights; pass weights=None with it")
    if solver != "fast":
        raise ValueError("solver='cvxpy' needs the samples in memory; use solver='fast' with a sample source")
    ks = _validate.radii(k)
    div = divergences.get(div_name)
    value, mult, status, mean, low = _solve_fast_any_precision(StreamedProblem(source, sense), ks, div)
    if sense == "cost":
        value, mean, low = -value, -mean, -low
        mult = div.for_cost(mult)
    squeeze_k = np.ndim(k) == 0
    if squeeze_k:
        value, mult, status = value[:, 0], mult[:, 0], status[:, 0]
    return WorstCase(
        value=value, mean=mean, extreme=low, multiplier=mult, status=status, k=ks, divergence=div_name, sense=sense,
        _psi=None, _q=None, _squeeze_batch=False, _squeeze_k=squeeze_k,
    )  # fmt: skip
