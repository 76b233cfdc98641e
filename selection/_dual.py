r"""The fast solver of the worst-case duals (:mod:`postconv.selection.estimators` states the math).

Everything here works on "signed" psi (a reward: smaller is worse), shifted so that each
row's minimum over its support is 0: per-row statistics, streaming passes of the sums a
divergence asks for, the classification into closed forms and interior pairs, the float32 /
float64 split, the dual at the found multipliers, the warm start. Each divergence's own
iterations and sums live in :mod:`postconv.selection.divergences`;
:mod:`postconv.selection._streamed` feeds the passes from a sample source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from postconv.selection.divergences.base import Divergence

# Solution status of one (checkpoint, k) pair.
INTERIOR, MEAN, MINIMUM = 0, 1, 2

_CHUNK_ELEMENTS = 1 << 20  # elements of one (rows, radii, columns) work buffer
_MAX_ITER = 100


_KEEP_BASIS_ELEMENTS = 1 << 22
_FLOAT32_CHUNK = 8192  # columns per float32 chunk sum (its rounding grows with its length)
_FLOAT32_MIN_K = 1e-2  # float32 samples: radii below this are solved in float64
_ROUNDING = 64.0  # rounding error of a pass's sums, in units of the dtype's eps
_TINY_K = 1e-14  # KL radii below this use the second-order closed form


# --------------------------------------------------------------------------------------
# The fast solver. Everything below works on "signed" psi (a reward: smaller is worse),
# shifted so that each row's minimum over its support is 0.
# --------------------------------------------------------------------------------------


@dataclass
class _Rows:
    """Per-checkpoint data the solvers share. Shapes: x (B, n); the rest (B,)."""

    x: torch.Tensor | np.ndarray  # psi - low on the support, 0 off it (numpy: small problems)
    q: torch.Tensor | np.ndarray | None  # normalized weights (B, n) or (1, n), None for uniform
    low: np.ndarray  # minimum over the support
    mean: np.ndarray  # E_q[x]
    var: np.ndarray  # Var_q[x]
    third: np.ndarray  # third central moment E_q[(x - mean)^3]
    top: np.ndarray  # maximum of x over the support
    q_min: np.ndarray  # q-mass of the minimizers (x == 0 on the support)
    basis: torch.Tensor | np.ndarray | None = None  # (B, m, n) q * x^j, kept for small problems


def _chunk_columns(rows: int, radii: int, n: int) -> int:
    return max(256, min(n, _CHUNK_ELEMENTS // max(1, rows * radii)))


def _row_stats(signed: torch.Tensor, q: torch.Tensor | None) -> _Rows:
    b, n = signed.shape
    if q is None:
        low_t = signed.amin(dim=-1)
        x = signed - low_t[:, None]
    else:
        support = q > 0
        low_t = torch.where(support, signed, torch.inf).amin(dim=-1)
        x = torch.where(support, signed - low_t[:, None], torch.zeros((), dtype=signed.dtype))
    f64 = torch.float64
    s1 = torch.zeros(b, dtype=f64, device=x.device)
    s2 = torch.zeros_like(s1)
    s3 = torch.zeros_like(s1)
    qmin = torch.zeros_like(s1)
    top = torch.zeros_like(s1)
    step = _chunk_columns(b, 1, n)
    for start in range(0, n, step):
        xc = x[:, start : start + step]
        qx = xc if q is None else q[:, start : start + step] * xc
        qxx = qx * xc
        s1 += qx.sum(-1, dtype=f64)
        s2 += qxx.sum(-1, dtype=f64)
        s3 += (qxx * xc).sum(-1, dtype=f64)
        if q is None:
            qmin += (xc == 0).sum(-1)
            top = torch.maximum(top, xc.amax(-1).to(f64))
        else:
            qc = q[:, start : start + step]
            qmin += (qc * ((xc == 0) & (qc > 0))).sum(-1, dtype=f64)
            top = torch.maximum(top, torch.where(qc > 0, xc, 0.0).amax(-1).to(f64))
    if q is None:
        s1, s2, s3, qmin = s1 / n, s2 / n, s3 / n, qmin / n
    numpy = [t.cpu().numpy() for t in (low_t.to(f64), s1, s2, s3, top, qmin)]
    return _rows_from_sums(x, q, *numpy)


def _rows_from_sums(x, q, low, s1, s2, s3, top, q_min, basis=None) -> _Rows:
    """:class:`_Rows` from the raw moments E_q[x^j], j = 1..3, of both statistics paths."""
    return _Rows(
        x=x,
        q=q,
        low=np.asarray(low, dtype=np.float64),
        mean=s1,
        var=np.maximum(s2 - s1**2, 0.0),
        third=s3 - 3.0 * s1 * s2 + 2.0 * s1**3,
        top=np.asarray(top, dtype=np.float64),
        q_min=np.clip(q_min, 0.0, 1.0),
        basis=basis,
    )


def _moments(
    rows: _Rows, idx: np.ndarray, params: np.ndarray, divergence: Divergence
) -> tuple[np.ndarray, ...]:
    """One streaming pass over the samples of rows ``idx`` for K parameters each.

    The divergence says what is summed (:meth:`~postconv.selection.divergences.base.Divergence.reduce`;
    KL, params = 1/lambda: q*e*x^j, j = 0..3, with e = exp(-x/lambda); chi2, params = eta: q*d,
    q*d^2, q*[d > 0] with d = (eta - x)_+). Each chunk is reduced by a batched matrix product
    with the basis [q, q*x, ...] in the samples' dtype; chunk sums are accumulated in float64.
    Shapes (R, K).
    """
    if isinstance(rows.x, np.ndarray):
        return _moments_small(rows, idx, params, divergence)
    if not isinstance(rows.x, torch.Tensor):  # streamed from a sample source
        return rows.x.moments(rows, idx, params, divergence)
    x_all, q_all = rows.x, rows.q
    r, kk = params.shape
    n = x_all.shape[-1]
    dev, dt = x_all.device, x_all.dtype
    p = torch.as_tensor(params, dtype=dt, device=dev)[:, :, None]
    all_rows = len(idx) == x_all.shape[0]
    idx_t = torch.as_tensor(idx, device=dev)
    m = divergence.powers
    total = torch.zeros((r, kk, divergence.sums), dtype=torch.float64, device=dev)
    # The same chunks in every pass, however many rows are still to do: a chunk's sum rounds
    # in the samples' dtype, and a row's moments must not change with its neighbours' progress
    # (near the KL ball's edge that made f jump across its root and the solver stall). In
    # float32 the chunks stay short enough that their sums keep ~1e-6 relative accuracy.
    step = _chunk_columns(x_all.shape[0], kk, n)
    if dt == torch.float32:
        step = min(step, _FLOAT32_CHUNK)
    buf = torch.empty((r, kk, step), dtype=dt, device=dev)
    kept = _kept_basis(rows, m)
    if kept is None:
        powers = torch.empty((r, m, step), dtype=dt, device=dev)
        if q_all is None:
            powers[:, 0].fill_(1.0)
    elif not all_rows:
        kept = kept[idx_t]
    for start in range(0, n, step):
        stop = min(n, start + step)
        w = stop - start
        xc = x_all[:, start:stop] if all_rows else x_all[idx_t, start:stop]
        if kept is not None:
            basis = kept[..., start:stop]
        else:
            basis = powers[..., :w]  # (R, m, c): q * x^j, written in place
            if q_all is not None:
                shared = q_all.shape[0] == 1 or all_rows
                qc = q_all[:, start:stop] if shared else q_all[idx_t, start:stop]
                basis[:, 0].copy_(qc.expand_as(xc))
            for j in range(1, m):
                torch.mul(basis[:, j - 1], xc, out=basis[:, j])
        divergence.reduce(basis, xc, p, buf[..., :w], total)
    if q_all is None:
        total /= n
    out = total.cpu().numpy()
    return tuple(out[..., i] for i in range(divergence.sums))


def _kept_basis(rows: _Rows, m: int) -> torch.Tensor | None:
    """The (B, m, n) basis q * x^j for all samples, built once per solve when it is small.

    Small problems are dominated by per-pass overhead; large ones rebuild the basis per
    chunk rather than hold m copies of the samples.
    """
    if rows.x.numel() * m > _KEEP_BASIS_ELEMENTS:
        return None
    if rows.basis is None or rows.basis.shape[1] < m:
        b, n = rows.x.shape
        basis = torch.empty((b, m, n), dtype=rows.x.dtype, device=rows.x.device)
        if rows.q is None:
            basis[:, 0].fill_(1.0)
        else:
            basis[:, 0].copy_(rows.q.expand(b, n))
        for j in range(1, m):
            torch.mul(basis[:, j - 1], rows.x, out=basis[:, j])
        rows.basis = basis
    return rows.basis[:, :m]


# Below this many (samples x radii) per solve, per-operation overhead dominates: the rows
# are kept as numpy arrays (about 1 us per op against torch's 5 to 10) and only the
# exponential goes through torch, whose vectorized exp is ~4x numpy's here.
_SMALL_PROBLEM = 1 << 17


def _rows(signed: torch.Tensor, q: torch.Tensor | None, radii: int) -> _Rows:
    if signed.device.type == "cpu" and signed.numel() * radii <= _SMALL_PROBLEM:
        # small problems are cheap in float64 whatever the input's precision
        return _row_stats_small(
            signed.numpy().astype(np.float64), None if q is None else q.numpy().astype(np.float64)
        )
    return _row_stats(signed, q)


def _eps(rows: _Rows) -> float:
    dtype = rows.x.dtype
    return float(np.finfo(dtype).eps if isinstance(rows.x, np.ndarray) else torch.finfo(dtype).eps)


def _row_stats_small(signed: np.ndarray, q: np.ndarray | None) -> _Rows:
    """:func:`_row_stats` on numpy arrays, for small problems."""
    if q is None:
        low = signed.min(axis=1)
        x = signed - low[:, None]
        basis = np.stack((np.ones_like(x), x, x * x, x * x * x), axis=1)
        sums = basis.sum(axis=2, dtype=np.float64) / x.shape[1]
        q_min = (x == 0).mean(axis=1)
        top = x.max(axis=1)
    else:
        support = q > 0
        low = np.where(support, signed, np.inf).min(axis=1)
        x = np.where(support, signed - low[:, None], 0).astype(signed.dtype)
        qx = q * x
        qxx = qx * x
        basis = np.stack((np.broadcast_to(q, x.shape), qx, qxx, qxx * x), axis=1)
        sums = basis.sum(axis=2, dtype=np.float64)
        q_min = (q * ((x == 0) & support)).sum(axis=1, dtype=np.float64)
        top = np.where(support, x, 0).max(axis=1)
    return _rows_from_sums(x, q, low, sums[:, 1], sums[:, 2], sums[:, 3], top, q_min, basis)


def _moments_small(
    rows: _Rows, idx: np.ndarray, params: np.ndarray, divergence: Divergence
) -> tuple[np.ndarray, ...]:
    """:func:`_moments` on numpy arrays, for small problems."""
    x = rows.x[idx][:, None, :]  # (R, 1, n)
    p = params.astype(x.dtype)[:, :, None]  # (R, K, 1)
    scale = 1.0 / x.shape[-1] if rows.q is None else 1.0
    return divergence.moments_small(rows.basis[idx], x, p, scale)


def _pass(
    rows: _Rows, todo: np.ndarray, params: np.ndarray, divergence: Divergence
) -> tuple[np.ndarray, ...]:
    """Moments for all (B, K) pairs, computed only for checkpoints with a pair still to do.

    Rows not computed get neutral values (1 for the first moment, else 0 or 1) that the
    callers mask out, so the Newton updates run on whole (B, K) arrays without indexing.
    """
    idx = np.nonzero(todo.any(axis=1))[0]
    sums = _moments(rows, idx, params[idx], divergence)
    if idx.size == todo.shape[0]:
        return sums
    full = []
    for j, part in enumerate(sums):
        out = np.full(todo.shape, divergence.neutral(j))
        out[idx] = part
        full.append(out)
    return tuple(full)


def _tolerance(rows: _Rows, rtol: float) -> np.ndarray:
    return rtol * np.maximum(rows.top, np.finfo(np.float64).tiny)


def _classify(rows: _Rows, kgrid: np.ndarray, divergence: Divergence) -> np.ndarray:
    """Status per (checkpoint, k): MEAN, MINIMUM (closed forms) or INTERIOR (solve)."""
    at_min = divergence.at_edge(rows.q_min[:, None], kgrid)
    at_mean = (kgrid == 0) | (rows.top[:, None] == 0)
    return np.where(at_mean, MEAN, np.where(at_min, MINIMUM, INTERIOR))


_WARM_SAMPLES = 1 << 14  # below 8x this many samples per checkpoint, no warm start


def _warm_start(
    signed: torch.Tensor, q: torch.Tensor | None, rows: _Rows, kgrid: np.ndarray, divergence: Divergence
) -> np.ndarray | None:
    """Multipliers solved on an evenly strided eighth of the samples, to start near the root.

    Recursive (each level warm-started from an eighth of itself, down to about 2^14
    samples), so the expensive passes over all samples drop from about nine to three or
    four. The answer does not depend on it: the full solve is safeguarded from any start.
    """
    if signed.shape[-1] < 8 * _WARM_SAMPLES:
        return None
    return rough_multipliers(
        signed[:, ::8].contiguous(), None if q is None else q[:, ::8], rows.low, kgrid, divergence
    )


def rough_multipliers(
    sub_signed: torch.Tensor,
    sub_q: torch.Tensor | None,
    low: np.ndarray,
    kgrid: np.ndarray,
    divergence: Divergence,
) -> np.ndarray | None:
    """Multipliers (B, K) solved to 1e-5 on a subsample of the signed samples (weights need
    not be normalized), NaN where the subsample's solution is not interior; None if none is.
    ``low`` is the full samples' minimum, which a chi2 threshold is measured from."""
    if sub_q is not None:
        mass = sub_q.sum(-1, keepdim=True)
        if bool((mass <= 0).any()):
            return None
        sub_q = sub_q / mass
    sub = _rows(sub_signed, sub_q, kgrid.shape[1])
    active = _classify(sub, kgrid, divergence) == INTERIOR
    if not active.any():
        return None
    start = _warm_start(sub_signed, sub_q, sub, kgrid, divergence)
    with np.errstate(all="ignore"):
        _, mult = divergence.solve(sub, kgrid, active, _tolerance(sub, 1e-5), start)
    mult = divergence.rebase(mult, (sub.low - low)[:, None])  # the subsample's minimum is higher
    return np.where(active, mult, np.nan)


class _Problem:
    """Signed samples (a reward: smaller is worse) as the solver reads them: in memory here,
    streamed from a :class:`~postconv.selection.source.SampleSource` in
    :mod:`postconv.selection._streamed`."""

    def __init__(self, signed: torch.Tensor, q: torch.Tensor | None):
        self.signed, self.q = signed, q
        self.dtype, self.batch, self.device = signed.dtype, signed.shape[0], signed.device

    def rows(self, radii: int) -> _Rows:
        """Per-row statistics; the rows' ``x`` is what :func:`_moments` passes over."""
        return _rows(self.signed, self.q, radii)

    def warm_start(self, rows: _Rows, kgrid: np.ndarray, divergence: Divergence) -> np.ndarray | None:
        return _warm_start(self.signed, self.q, rows, kgrid, divergence)

    def in_float64(self) -> _Problem:
        # the weights normalized again in float64: float32 sums are off ~1e-7
        q64 = None if self.q is None else self.q.double() / self.q.double().sum(-1, keepdim=True)
        return _Problem(self.signed.double(), q64)

    def float64_chunks(self, columns: int):
        """(x, w) column chunks in float64: signed samples, weights (None: uniform)."""
        n = self.signed.shape[1]
        for start in range(0, n, columns):
            x = self.signed[:, start : start + columns].double()
            yield x, None if self.q is None else self.q[:, start : start + columns].double().expand_as(x)


def _solve_fast_any_precision(
    problem: _Problem, ks: np.ndarray, divergence: Divergence
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_solve_fast`, with radii too small for float32 sums redone in float64.

    In float32 a pass's KL carries an absolute error near 1e-5, so a ball of radius below
    :data:`_FLOAT32_MIN_K` cannot be located; those radii (rare: the paper uses 2 to 6)
    are solved on a float64 copy. The others are solved in float32 and their values
    evaluated again in float64 (:func:`_values_in_float64`).
    """
    small = (ks > 0) & (ks < _FLOAT32_MIN_K)
    if problem.dtype != torch.float32:
        return _solve_fast(problem, ks, divergence)
    parts = []
    if small.any():
        parts.append(_solve_fast(problem.in_float64(), ks[small], divergence))
    if (~small).any():
        value, mult, status, _, low = _solve_fast(problem, ks[~small], divergence)
        parts.append((*_values_in_float64(problem, low, ks[~small], value, mult, status, divergence), low))
    if len(parts) == 1:
        return parts[0]
    value, mult, status = (np.empty((problem.batch, ks.size), dtype=a.dtype) for a in parts[0][:3])
    for mask, part in zip((small, ~small), parts, strict=False):
        value[:, mask], mult[:, mask], status[:, mask] = part[:3]
    return value, mult, status, parts[-1][3], parts[-1][4]


def _values_in_float64(
    problem: _Problem,
    low: np.ndarray,
    ks: np.ndarray,
    value: np.ndarray,
    mult: np.ndarray,
    status: np.ndarray,
    divergence: Divergence,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""The mean and the dual objective at the solver's multipliers, summed in float64.

    A float32 pass locates the multiplier well, but its value carries the rounding of float32
    sums (up to ~1e-5 where falls make psi span several units). The dual at *any* multiplier
    is a lower bound on :math:`V_k` (weak duality), so evaluating it in float64 at the found
    one makes the reported value a lower bound in every dtype, as close to :math:`V_k` as the
    multiplier is to the optimum (the dual is flat there). One more pass over the samples,
    streamed in column chunks like the solver's; ``low`` is the minimum over the support
    (exact in any dtype).

    KL: :math:`h(\lambda) = \min\psi - \lambda \log E_q[e^{-(\psi-\min\psi)/\lambda}] - \lambda k`;
    chi2: :math:`g(\eta) = \eta - \sqrt{1+2k}\,\sqrt{E_q[(\eta-\psi)_+^2]}`; the mean
    :math:`E_q[\psi]` (k = 0) likewise. Weights are normalized again in float64.
    """
    b, f64, dev = problem.batch, torch.float64, problem.device
    low_t = torch.as_tensor(low, dtype=f64, device=dev)
    interior = torch.as_tensor(status == INTERIOR, device=dev)
    params = torch.where(interior, torch.as_tensor(mult, dtype=f64, device=dev), 1.0)  # (B, K)
    params = divergence.dual_params(params, low_t[:, None])
    total = torch.zeros((b, ks.size), dtype=f64, device=dev)
    first = torch.zeros(b, dtype=f64, device=dev)
    mass = torch.zeros(b, dtype=f64, device=dev)
    for x, w in problem.float64_chunks(_chunk_columns(b, ks.size, 1 << 62)):
        x = x - low_t[:, None]
        if w is not None:  # off the support a sample may lie below the minimum: no terms
            x = torch.where(w > 0, x, 0.0)
        term = divergence.dual_term(x[:, None, :], params[:, :, None])
        if w is None:
            total += term.sum(-1)
            first += x.sum(-1)
            mass += x.shape[1]
        else:
            total += (term * w[:, None, :]).sum(-1)
            first += (w * x).sum(-1)
            mass += w.sum(-1)
    total, first = total / mass[:, None], first / mass
    kk = torch.as_tensor(ks, dtype=f64, device=dev)[None, :]
    dual = divergence.dual_value(low_t[:, None], params, total, kk)
    mean = (low_t + first).cpu().numpy()
    value = np.where(status == INTERIOR, dual.cpu().numpy(), value)
    value = np.where(status == MEAN, mean[:, None], value)
    return value, mult, status, mean


def _solve_fast(
    problem: _Problem, ks: np.ndarray, divergence: Divergence
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Values, multipliers, status (B, K), means and minima (B,) of the signed samples."""
    rows = problem.rows(ks.size)
    b, kk = problem.batch, ks.size
    kgrid = np.broadcast_to(ks, (b, kk))
    status = _classify(rows, kgrid, divergence)
    value = np.where(status == MEAN, rows.mean[:, None], 0.0)
    mult = np.where(status == MEAN, np.inf, 0.0)
    interior = status == INTERIOR
    if interior.any():
        start = problem.warm_start(rows, kgrid, divergence)
        rtol = 1e-10 if problem.dtype == torch.float64 else 1e-6
        # inf/nan from flat or empty regions are caught by the bracket safeguards
        with np.errstate(all="ignore"):
            v, m = divergence.solve(rows, kgrid, interior, _tolerance(rows, rtol), start)
        value = np.where(interior, v, value)
        mult = np.where(interior, m, mult)
    value = value + rows.low[:, None]
    mean = rows.mean + rows.low
    mult = divergence.to_psi_units(mult, rows.low[:, None], status)
    return value, mult, status.astype(np.int8), mean, rows.low


def _keep_in_bracket(
    nxt: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    reach: np.ndarray | None = None,
    moving: np.ndarray | None = None,
) -> np.ndarray:
    """Take the Newton point when it falls strictly inside (lo, hi), else bisect.

    With one side of the bracket still open (infinite) the point moves ``reach`` past the
    closed side; ``reach`` doubles in place each time, so a far-off start costs
    logarithmically many passes.
    """
    inside = np.isfinite(nxt) & (nxt > lo) & (nxt < hi)
    bracketed = np.isfinite(lo) & np.isfinite(hi)
    step = 4.0 if reach is None else reach
    mid = np.where(bracketed, 0.5 * (lo + hi), np.where(np.isfinite(lo), lo + step, hi - step))
    if reach is not None:
        reach *= np.where(~inside & ~bracketed & (True if moving is None else moving), 2.0, 1.0)
    return np.where(inside, nxt, mid)


def _no_convergence(name: str, todo: np.ndarray) -> str:
    pairs = [tuple(int(i) for i in p) for p in np.argwhere(todo)[:5]]
    return (
        f"the {name} worst-case solver did not converge in {_MAX_ITER} iterations for "
        f"(checkpoint, k) pairs {pairs}; please report this with the samples, or use solver='cvxpy'"
    )
