r"""The group bootstrap from per-group sums: 200 replicates in a few passes over the samples.

A replicate of the group bootstrap draws the G groups with replacement; group g drawn
:math:`c_{rg}` times gives each of its samples the weight :math:`c_{rg} q_j`. The KL dual of
replicate r at a multiplier :math:`\lambda` (with :math:`x = \psi - \min\psi \ge 0` and
:math:`u = \log\lambda`) is

.. math::  h_r(\lambda) = \min\psi - \lambda \log \frac{\sum_g c_{rg} S^0_g(\lambda)}{\sum_g c_{rg} N_g} - \lambda k,
   \qquad \frac{\partial h_r}{\partial u} = \lambda\,(\mathrm{KL}_r(\lambda) - k),
   \qquad \mathrm{KL}_r = -\frac{1}{\lambda}\frac{\sum_g c_{rg} S^1_g}{\sum_g c_{rg} S^0_g} - \log\frac{\sum_g c_{rg} S^0_g}{\sum_g c_{rg} N_g}

with the per-group sums :math:`N_g = \sum_{j\in g} q_j`, :math:`S^0_g = \sum_{j \in g} q_j e^{-x_j/\lambda}`,
:math:`S^1_g = \sum_{j \in g} q_j x_j e^{-x_j/\lambda}`. So one pass over the samples that
sums, per group, :math:`S^0` and :math:`S^1` at a grid of multipliers gives *every*
replicate's dual and its slope exactly at those nodes (a (R, G) @ (G, L) product), where the
per-sample bootstrap solves each replicate with passes of its own. Between the two nodes
where the slope changes sign the replicate's optimum is the maximum of the cubic Hermite
interpolant of :math:`h_r` in u; the nodes themselves are exact lower bounds (weak duality),
and the reported value is never below the better of the two.

chi2 is the same with :math:`g_r(\eta) = \min\psi + \eta - \sqrt{1+2k}\sqrt{B_r(\eta)}`,
:math:`\partial g_r/\partial \log\eta = \eta\,(1 - \sqrt{1+2k}\,A_r/\sqrt{B_r})` from the
per-group sums :math:`A_g = \sum q (\eta - x)_+` and :math:`B_g = \sum q (\eta - x)_+^2`.

The nodes lie on a lattice :math:`u \in \Delta\mathbb{Z}` around each (checkpoint, k)'s
full-sample multiplier, so nearby radii share them; a replicate whose optimum lies off the
grid is caught by the slopes' signs and the grid extended that way in a further pass. Means,
the ball's edge (all mass on the replicate's worst samples) and k = 0 are exact from
per-group sums. The error against the per-sample bootstrap is measured in
``tests/selection/test_grouped_bootstrap.py`` and stated in the README.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from postconv.selection import divergences
from postconv.selection._dual import _FLOAT32_MIN_K
from postconv.selection._streamed import checked_chunks
from postconv.selection.estimators import INTERIOR, WorstCase, worst_case
from postconv.selection.source import Chunk, SampleSource

SPACING = 0.1
"""Lattice step of the nodes in log multiplier: about 10% apart."""
EXTEND = 8
"""Nodes an extending pass adds beyond the outermost, at doubling steps (up to e^25.5 away)."""
HALF_WIDTH = 3
"""Nodes on each side of a full-sample multiplier (a replicate's lies within ~30% of it
when groups are many; farther ones trigger an extension)."""
MAX_PASSES = 6
"""Passes over the samples at most: the first, then extensions toward optima off the grid
and refinements where a replicate's certified gap is above the tolerance."""
TOLERANCE = 1e-6
"""A replicate value is final when its certified gap is below this times the samples'
range (the per-sample solver's float32 tolerance)."""
REFINE = 8
"""Nodes a refining pass adds per (checkpoint, k) with loose replicates."""
SHARE = 1e-3
"""A replicate value's certified gap may be this share of its (checkpoint, k)'s replicate
spread (interquartile range): percentiles move by at most that much."""
_BLOCK = 1 << 21  # elements of one (B, L, columns) work block
_TERMS_PER_PARTIAL = 32  # columns per group, on average, summed in the samples' dtype


@dataclass(frozen=True)
class GroupedReplicates:
    """Replicate values of the group bootstrap. R replicates, B checkpoints, K radii."""

    values: np.ndarray
    """(R, B, K) worst-case values, in psi's sense."""
    means: np.ndarray
    """(R, B) plain means, exact."""
    passes: int
    """Passes over the samples (the first also sums the groups' weights and means)."""
    nodes: int
    """Multipliers at which the groups were summed, the most of any checkpoint."""
    max_gap: float
    """The largest certified error of a replicate value: its optimum lies between the best
    node's dual (a lower bound) and the tangents' crossing (an upper bound: the dual is
    concave in the multiplier), and the value reported lies between the two."""
    solved_exactly: int
    """(checkpoint, replicate) pairs still loose (:func:`_loose`) after :data:`MAX_PASSES`,
    then solved over their samples like the per-sample bootstrap (a streamed solve)."""


@dataclass
class _Groups:
    """What the first pass learns of each group (B, G), in x = signed psi - minimum."""

    mass: torch.Tensor  # sum of q
    first: torch.Tensor  # sum of q x
    minimum: torch.Tensor  # min of x over the group's support (inf: no support)
    at_minimum: torch.Tensor  # q-mass at that minimum
    top: torch.Tensor  # (B,) largest x over the support


@dataclass(frozen=True)
class _NodeSums:
    """The node sums of one pass: nodes (B, L) in log multiplier, s0 and s1 (B, L, G).

    KL: s0 = sum q e^(-(x - m_g)/lambda), s1 = sum q (x - m_g) e^(-(x - m_g)/lambda), each
    group shifted by its own minimum m_g so that no group's sums underflow however small
    lambda is; chi2: s0 = sum q (eta - x)_+, s1 = sum q (eta - x)_+^2."""

    nodes: np.ndarray
    s0: torch.Tensor
    s1: torch.Tensor


def _chunks_in_x(source: SampleSource, sense: str, low: np.ndarray, purpose: str, check: bool = False):
    """Per chunk: x = signed psi - low (0 off the support), weights q (None: all 1), the
    support mask and the groups, on the CPU. ``check``: the first pass checks the chunks."""
    sign = 1.0 if sense == "reward" else -1.0
    low_t = torch.as_tensor(low, dtype=torch.float64)
    for chunk in checked_chunks(source, purpose) if check else source.chunks(purpose):
        dt = chunk.psi.dtype
        shifted = chunk.psi * sign - low_t.to(device=chunk.psi.device, dtype=dt)[:, None]
        if chunk.weights is None:
            yield shifted.cpu(), None, None, chunk.groups.cpu()
            continue
        q = chunk.weights.to(dt)
        on = q > 0
        yield torch.where(on, shifted, torch.zeros((), dtype=dt)).cpu(), q.cpu(), on.cpu(), chunk.groups.cpu()


def _sum_groups(source: SampleSource, sense: str, low: np.ndarray) -> _Groups:
    """The first pass: each group's weight, weighted sum, minimum and the mass there."""
    b, _ = source.shape
    g, f64 = source.n_groups, torch.float64
    sums = _Groups(
        mass=torch.zeros((b, g), dtype=f64),
        first=torch.zeros((b, g), dtype=f64),
        minimum=torch.full((b, g), torch.inf, dtype=f64),
        at_minimum=torch.zeros((b, g), dtype=f64),
        top=torch.zeros(b, dtype=f64),
    )
    for x, q, on, groups in _chunks_in_x(source, sense, low, "resampling: group sums", check=True):
        q = torch.ones_like(x) if q is None else q
        on = torch.ones_like(x, dtype=torch.bool) if on is None else on
        sums.mass.index_add_(1, groups, q.double())
        sums.first.index_add_(1, groups, (q * x).double())
        _merge_minimum(sums, torch.where(on, x, torch.inf).double(), q.double(), groups)
        sums.top = torch.maximum(sums.top, torch.where(on, x, 0.0).amax(-1).double())
    return sums


def _sum_nodes(
    source: SampleSource,
    sense: str,
    low: np.ndarray,
    groups: _Groups,
    nodes: np.ndarray,
    divergence,
    dtype: torch.dtype | None = None,
) -> _NodeSums:
    """One pass: every group's two node sums at ``nodes`` (B, L) log multipliers.

    Terms are summed into their groups in the samples' dtype, then into float64 every
    :data:`_TERMS_PER_PARTIAL` x G columns (a float32 partial holds a few dozen terms per
    group on average). ``dtype`` float64 sums small radii, whose KL float32 cannot resolve."""
    b, lnodes = nodes.shape
    n_groups = source.n_groups
    total0 = torch.zeros((b, lnodes, n_groups), dtype=torch.float64)
    total1 = torch.zeros_like(total0)
    param = torch.exp(torch.as_tensor(nodes))[:, :, None]  # lambda or eta
    minimum = torch.where(torch.isfinite(groups.minimum), groups.minimum, 0.0)
    # a block is also at most _TERMS_PER_PARTIAL x G columns, so few groups still flush often
    step = max(1, min(_BLOCK // (b * lnodes), _TERMS_PER_PARTIAL * n_groups))
    purpose = f"resampling: group sums at {lnodes} multipliers per checkpoint"
    part0 = part1 = buf = extra = None
    pending = 0
    for x, q, on, g in _chunks_in_x(source, sense, low, purpose):
        if dtype is not None:
            x, q = x.to(dtype), None if q is None else q.to(dtype)
        if part0 is None:
            dt = x.dtype
            part0 = torch.zeros((b, lnodes, n_groups), dtype=dt)
            part1 = torch.zeros_like(part0)
            buf = torch.empty((b, lnodes, step), dtype=dt)
            extra = torch.empty_like(buf)
            scale = divergence.node_scale(param).to(dt)
        if divergence.from_group_minimum:  # from each group's minimum: the terms are at most 1
            shift = minimum[:, g].to(x.dtype)
            x = x - shift if on is None else torch.where(on, x - shift, 0.0)
        for start in range(0, x.shape[1], step):
            cols = slice(start, start + step)
            xc, gc = x[:, None, cols], g[cols]
            w = xc.shape[-1]
            e, f = buf[..., :w], extra[..., :w]
            t0, t1 = divergence.node_terms(xc, scale, None if q is None else q[:, None, cols], e, f)
            part0.index_add_(2, gc, t0)
            part1.index_add_(2, gc, t1)
            pending += w
            if pending >= _TERMS_PER_PARTIAL * n_groups:  # however few the groups
                total0 += part0
                total1 += part1
                part0.zero_()
                part1.zero_()
                pending = 0
    if part0 is not None:
        total0 += part0
        total1 += part1
    return _NodeSums(nodes, total0, total1)


def _merge_minimum(sums: _Groups, x: torch.Tensor, q: torch.Tensor, groups: torch.Tensor) -> None:
    """Fold a chunk's per-group minima and the mass at them into the running ones."""
    b = x.shape[0]
    chunk_min = torch.full_like(sums.minimum, torch.inf)
    chunk_min.scatter_reduce_(1, groups.expand(b, -1), x, reduce="amin")
    at = (x == chunk_min[:, groups]) & torch.isfinite(x)
    chunk_mass = torch.zeros_like(sums.at_minimum).index_add_(1, groups, q * at)
    lower = chunk_min < sums.minimum
    same = chunk_min == sums.minimum
    sums.at_minimum = torch.where(
        lower, chunk_mass, torch.where(same, sums.at_minimum + chunk_mass, sums.at_minimum)
    )
    sums.minimum = torch.minimum(sums.minimum, chunk_min)


def grouped_replicates(
    source: SampleSource, estimate: WorstCase, draw: Callable[[np.ndarray], np.ndarray]
) -> GroupedReplicates:
    """Worst-case values and means of every bootstrap replicate from per-group sums.

    Args:
        source: the samples, in G groups (``source.n_groups``).
        estimate: the full-sample :func:`~postconv.selection.worst_case` of the same source
            (B checkpoints, K radii): its multipliers place the nodes.
        draw: given each group's weight per checkpoint (B, G), the times each group is
            drawn in each replicate: (R, G) shared by the checkpoints (paired) or (B, R, G).
    """
    b, _ = source.shape
    ks = np.atleast_1d(estimate.k)
    divergence, sense = divergences.get(estimate.divergence), estimate.sense
    sign = 1.0 if sense == "reward" else -1.0
    low = sign * np.asarray(estimate.extreme, dtype=np.float64).reshape(b)
    groups = _sum_groups(source, sense, low)
    c = np.asarray(draw(groups.mass.numpy()), dtype=np.float64)
    c = np.broadcast_to(c[None] if c.ndim == 2 else c, (b, *c.shape[-2:]))
    mass = _per_replicate(c, groups.mass)  # (B, R)
    mean_x = _per_replicate(c, groups.first) / mass
    edge_x, edge_mass = _replicate_minimum(c, groups)
    # closed forms: k = 0 or a constant replicate gives the mean; past the edge, the minimum
    kk = ks[None, None, :]
    at_mean = (kk == 0) | (mean_x[..., None] == edge_x[..., None])
    at_edge = divergence.at_edge((edge_mass / mass)[..., None], kk)
    interior = ~at_mean & ~at_edge
    tol = TOLERANCE * np.maximum(groups.top.numpy(), np.finfo(np.float64).tiny)[:, None, None]
    replicates = _Replicates(c, mass, mean_x, edge_x, groups)
    nodes = _initial_nodes(estimate, low, b, ks.size)
    # as the estimator: float32 sums cannot locate a ball of radius below _FLOAT32_MIN_K
    dtype = torch.float64 if ((ks > 0) & (ks < _FLOAT32_MIN_K)).any() else None
    closed = np.where(at_mean, mean_x[..., None], np.where(at_edge, edge_x[..., None], 0.0))
    value, gap = closed, np.zeros(interior.shape)
    loose = np.zeros(interior.shape, dtype=bool)
    passes = 1
    while interior.any():  # k = 0 alone, or closed forms only: no node pass
        replicates.add(_sum_nodes(source, sense, low, groups, nodes, divergence, dtype), divergence)
        passes += 1
        solved = _solve_on_nodes(replicates, ks, divergence)
        value = np.where(interior, solved.value, closed)
        lower, upper = np.where(interior, solved.lower, value), np.where(interior, solved.upper, value)
        loose = interior & _loose(value, lower, upper, low, tol)
        gap = np.where(loose, 0.0, upper - lower)
        if passes >= MAX_PASSES or not loose.any():
            break
        need = np.where(loose, solved.need, 0)
        nodes = _extension(replicates.nodes(), need) if need.any() else _refinement(solved, loose)
    fallback = np.argwhere(loose.any(-1))  # (P, 2): (checkpoint, replicate) pairs
    if fallback.size:  # solved over the samples, as the per-sample bootstrap would
        reweighted = _Reweighted(source, fallback, c)
        again = worst_case(reweighted, k=ks, divergence=divergence.name, sense=sense)
        exact = sign * np.asarray(again.value).reshape(len(fallback), ks.size) - low[fallback[:, 0], None]
        value = value.copy()
        value[fallback[:, 0], fallback[:, 1]] = exact
        passes += reweighted.passes
    values = low[:, None, None] + value  # (B, R, K), signed
    means = low[:, None] + mean_x
    return GroupedReplicates(
        values=sign * values.transpose(1, 0, 2),
        means=sign * means.T,
        passes=passes,
        nodes=replicates.distinct_nodes(),
        max_gap=float(gap.max()),
        solved_exactly=len(fallback),
    )


class _Reweighted:
    """A :class:`SampleSource` of chosen bootstrap replicates: row p is checkpoint b_p with
    each sample weighted by the times replicate r_p drew its group (for an exact solve)."""

    def __init__(self, source: SampleSource, pairs: np.ndarray, counts: np.ndarray):
        self.source = source
        self.counts = torch.as_tensor(np.ascontiguousarray(counts[pairs[:, 0], pairs[:, 1]]))  # (P, G)
        self.rows = torch.as_tensor(pairs[:, 0])
        self.passes = 0

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), self.source.shape[1]

    @property
    def n_groups(self) -> int:
        return self.source.n_groups

    @property
    def dtype(self) -> torch.dtype:
        return self.source.dtype

    def chunks(self, purpose: str):
        self.passes += 1
        step = max(1, _BLOCK // len(self.rows))  # P rows: the source's chunks cut to bound memory
        for chunk in self.source.chunks(f"{purpose} ({len(self.rows)} replicates off the grid)"):
            rows = self.rows.to(chunk.psi.device)
            for start in range(0, chunk.psi.shape[1], step):
                cols = slice(start, start + step)
                psi = chunk.psi[rows, cols]
                groups = chunk.groups[cols]
                drawn = self.counts[:, groups.cpu()].to(device=psi.device, dtype=psi.dtype)
                if chunk.weights is not None:
                    drawn *= chunk.weights[rows, cols].to(psi.dtype)
                yield Chunk(psi=psi, weights=drawn, groups=groups)


def _loose(
    value: np.ndarray, lower: np.ndarray, upper: np.ndarray, low: np.ndarray, floor: np.ndarray
) -> np.ndarray:
    """(B, R, K) replicate values whose certified gap could still move a result.

    ``value``, ``lower``, ``upper``: the values and their bounds above each checkpoint's
    minimum ``low`` (closed forms with no gap). A value is final when its gap is below
    ``floor`` (the per-sample solver's accuracy) or below :data:`SHARE` of the replicates'
    spread (interquartile range) at its (checkpoint, k), the scale the percentile intervals
    measure, unless it is in a replicate whose best checkpoint is not yet certain (another's
    upper bound above the winner's lower bound): P(best) counts those exactly."""
    gap = upper - lower
    q1, q3 = np.quantile(value, [0.25, 0.75], axis=1, keepdims=True)
    wide = gap > np.maximum(floor, SHARE * (q3 - q1))
    shift = low[:, None, None]
    winner = np.argmax(value + shift, axis=0)  # (R, K)
    floor_of_winner = np.take_along_axis(lower + shift, winner[None], 0)  # (1, R, K)
    is_winner = np.arange(value.shape[0])[:, None, None] == winner[None]
    rival = (upper + shift > floor_of_winner) & ~is_winner  # could still beat the winner
    challenger = rival | (is_winner & rival.any(0, keepdims=True))
    return wide | (challenger & (gap > floor))


def _per_replicate(c: np.ndarray, per_group: torch.Tensor) -> np.ndarray:
    """(B, R, G) counts x (B, G) group sums -> (B, R)."""
    return np.einsum("brg,bg->br", c, per_group.numpy())


class _Replicates:
    """Every replicate's node sums, accumulated over the passes: (B, R, L) each.

    KL sums are kept relative to each replicate's own minimum a_r (its smallest x over the
    groups it drew): s0 = sum_g c_rg e^(-(m_g - a_r)/lambda) S0_g / N_r, which holds the
    replicate's minimum's own mass however small lambda is, so nothing underflows. The
    replicates of one a_r share one (R_a, G) @ (G, L) product; a_r takes a few values."""

    def __init__(
        self, c: np.ndarray, mass: np.ndarray, mean_x: np.ndarray, edge_x: np.ndarray, groups: _Groups
    ):
        self.c, self.mass, self.mean_x, self.edge_x = c, mass, mean_x, edge_x
        self.minimum = groups.minimum.numpy()
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def nodes(self) -> np.ndarray:
        return np.concatenate([p[0] for p in self.parts], 1)

    def distinct_nodes(self) -> int:
        """Multipliers summed per checkpoint (padding repeats left out), the most of any."""
        if not self.parts:
            return 0
        return max(np.unique(row).size for row in self.nodes())

    def sums(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(nodes (B, L), s0, s1 (B, R, L)) of all passes."""
        return (
            self.nodes(),
            np.concatenate([p[1] for p in self.parts], 2),
            np.concatenate([p[2] for p in self.parts], 2),
        )

    def add(self, sums: _NodeSums, divergence) -> None:
        b, r, _ = self.c.shape
        lnodes = sums.nodes.shape[1]
        s0 = np.empty((b, r, lnodes))
        s1 = np.empty((b, r, lnodes))
        for i in range(b):
            g0, g1 = sums.s0[i].numpy().T, sums.s1[i].numpy().T  # (G, L)
            if not divergence.from_group_minimum:
                s0[i], s1[i] = self.c[i] @ g0, self.c[i] @ g1
                continue
            param = np.exp(sums.nodes[i])[None, :]  # (1, L)
            m = self.minimum[i][:, None]  # (G, 1); inf for a group without weight (its sums are 0)
            for a in np.unique(self.edge_x[i]):  # each replicate's sums from its own minimum a
                rows = self.edge_x[i] == a
                r0, r1 = divergence.regroup(g0, g1, m, a, param)
                s0[i, rows] = self.c[i, rows] @ r0
                s1[i, rows] = self.c[i, rows] @ r1
        self.parts.append((sums.nodes, s0 / self.mass[..., None], s1 / self.mass[..., None]))


def _replicate_minimum(c: np.ndarray, groups: _Groups) -> tuple[np.ndarray, np.ndarray]:
    """(B, R) each replicate's smallest x over the groups it drew, and the mass there."""
    b, r, _ = c.shape
    edge = np.empty((b, r))
    mass = np.empty((b, r))
    for i in range(b):
        gmin = groups.minimum[i].numpy()
        drawn = c[i] > 0
        edge[i] = np.where(drawn, gmin[None, :], np.inf).min(axis=1)
        at_edge = gmin[None, :] == edge[i][:, None]
        mass[i] = (c[i] * np.where(at_edge, groups.at_minimum[i].numpy()[None, :], 0.0)).sum(1)
    return edge, mass


def _initial_nodes(estimate: WorstCase, low: np.ndarray, b: int, kk: int) -> np.ndarray:
    """(B, L) lattice nodes in log multiplier around each interior full-sample multiplier.

    Rows with no interior radius get nodes around the largest interior multiplier of any
    row (a start; extensions move from there)."""
    mult = np.asarray(estimate.multiplier, dtype=np.float64).reshape(b, kk)
    status = np.asarray(estimate.status).reshape(b, kk)
    mult = divergences.get(estimate.divergence).node_multiplier(mult, estimate.sense, low)
    ok = (status == INTERIOR) & np.isfinite(mult) & (mult > 0)
    centre = np.full((b, kk), np.nan)
    centre[ok] = np.log(mult[ok]) / SPACING
    fallback = np.nanmax(centre) if ok.any() else 0.0
    centre = np.where(ok, centre, np.nanmax(np.where(ok, centre, -np.inf), axis=1, keepdims=True))
    centre = np.where(np.isfinite(centre), centre, fallback)
    sets = []
    for i in range(b):
        points = set()
        for ctr in centre[i]:
            points.update(range(int(np.floor(ctr)) - HALF_WIDTH, int(np.ceil(ctr)) + HALF_WIDTH + 1))
        sets.append([p * SPACING for p in sorted(points)])
    return _padded(sets)


def _padded(sets: list[list[float]]) -> np.ndarray:
    """Nodes per row -> (B, L), short rows repeating their last node (a repeated node adds
    nothing: no interval between equal nodes brackets an optimum)."""
    width = max(len(s) for s in sets)
    return np.array([s + [s[-1]] * (width - len(s)) for s in sets], dtype=np.float64)


def _extension(nodes: np.ndarray, need: np.ndarray) -> np.ndarray:
    """(B, L') new nodes: for rows with replicates whose optimum lies below (need < 0) or above
    (need > 0) every node, EXTEND nodes that way at doubling steps from the outermost (near
    the ball's edge a multiplier can lie orders of magnitude below the full sample's)."""
    reach = SPACING * 2.0 ** np.arange(EXTEND)
    sets = []
    for i in range(nodes.shape[0]):
        points: list[float] = []
        if (need[i] < 0).any():
            points += list(nodes[i].min() - reach)
        if (need[i] > 0).any():
            points += list(nodes[i].max() + reach)
        sets.append(sorted(points) or [float(nodes[i, 0])])  # rows with nothing new repeat a node
    return _padded(sets)


def _refinement(solved: _OnNodes, loose: np.ndarray) -> np.ndarray:
    """(B, L') nodes where the loose replicates' optima are (:func:`_loose`): per
    (checkpoint, k), at and a sixteenth of its bracket around each estimated optimum when
    they are few, else REFINE nodes spread evenly over their span (replicates cluster when
    groups are many, so the next pass brackets each optimum tightly)."""
    lo, hi = solved.brackets
    sets = []
    for i in range(lo.shape[0]):
        points: list[np.ndarray] = []
        for j in range(lo.shape[2]):
            live = loose[i, :, j]
            if not live.any():
                continue
            at = solved.argmax[i, live, j]
            margin = np.maximum((hi[i, live, j] - lo[i, live, j]) / 16.0, 1e-9)
            if at.size * 3 <= 2 * REFINE:
                points.append(np.concatenate([at - margin, at, at + margin]))
            else:
                points.append(np.linspace(at.min() - margin.min(), at.max() + margin.min(), REFINE))
        sets.append(list(np.unique(np.round(np.concatenate(points), 12))) if points else [float(lo[i, 0, 0])])
    return _padded(sets)


@dataclass(frozen=True)
class _OnNodes:
    """Replicate optima from the nodes so far, (B, R, K) each, above the minimum."""

    value: np.ndarray  # the Hermite estimate (bracketed) or the lower bound, within [lower, upper]
    lower: np.ndarray  # the best node's dual (or the replicate's minimum)
    upper: np.ndarray  # concavity's bound (or the replicate's mean)
    need: np.ndarray  # -1: optimum below every node, +1: above, 0: bracketed
    brackets: tuple[np.ndarray, np.ndarray]  # the bracketing nodes in log multiplier
    argmax: np.ndarray  # where the Hermite estimate peaks, in log multiplier


def _solve_on_nodes(replicates: _Replicates, ks: np.ndarray, divergence) -> _OnNodes:
    """Each replicate's optimum from its node values and slopes, with certified bounds.

    The dual is concave in the multiplier p = e^u: the tangents at the two nodes that
    bracket the optimum cross above it (the upper bound), and every node's dual lies below
    it (the lower bound). Unbracketed, the bounds are the tangent at the nearest node toward
    p = 0 (or the mean, which bounds every worst case) and the best node."""
    u, s0, s1 = replicates.sums()
    mean_x, edge_x = replicates.mean_x, replicates.edge_x
    order = np.argsort(u, axis=1, kind="stable")
    u = np.take_along_axis(u, order, 1)
    s0 = np.take_along_axis(s0, order[:, None, :], 2)
    s1 = np.take_along_axis(s1, order[:, None, :], 2)
    h, d = _node_duals(u, s0, s1, edge_x, ks, divergence)  # (B, R, K, L)
    up = d > 0  # the optimum lies at a larger multiplier
    first_down = np.argmax(~up, axis=-1)  # first node with slope <= 0
    need = np.where(up.all(-1), 1, np.where(first_down == 0, -1, 0))
    j = np.clip(first_down, 1, u.shape[1] - 1)
    pick = lambda a, idx: np.take_along_axis(a, idx[..., None], -1)[..., 0]  # noqa: E731
    ua = np.broadcast_to(u[:, None, None, :], h.shape)
    lo, hi = pick(ua, j - 1), pick(ua, j)
    ha, hb, da, db = pick(h, j - 1), pick(h, j), pick(d, j - 1), pick(d, j)
    mean = np.broadcast_to(mean_x[..., None], need.shape)
    lower = np.maximum(np.where(np.isfinite(h), h, -np.inf).max(-1), edge_x[..., None])
    with np.errstate(all="ignore"):
        pa, pb = np.exp(lo), np.exp(hi)
        sa, sb = da / pa, db / pb  # slopes in p
        cross = (hb - ha + sa * pa - sb * pb) / (sa - sb)
        upper = np.where(sa > sb, ha + sa * (cross - pa), np.maximum(ha, hb))
        first_h, first_d = h[..., 0], d[..., 0]
        below = first_h - first_d  # tangent at the first node, at p = 0 (slope in p = d / p)
    upper = np.where(need == 0, upper, np.where(need < 0, below, mean))
    upper = np.minimum(np.where(np.isfinite(upper), upper, mean), mean)
    upper = np.maximum(upper, lower)
    estimate, at = _hermite_max(lo, hi, ha, hb, da, db)
    value = np.where(need == 0, estimate, lower)
    return _OnNodes(np.clip(value, lower, upper), lower, upper, need, (lo, hi), at)


def _node_duals(
    u: np.ndarray, s0: np.ndarray, s1: np.ndarray, edge_x: np.ndarray, ks: np.ndarray, divergence
) -> tuple[np.ndarray, np.ndarray]:
    """Dual values above the minimum and their slopes in u, (B, R, K, L), at each node.

    KL sums are relative to the replicate's minimum a (``edge_x``, (B, R)): with
    M = E[e^(-(x - a)/lambda)], h = a - lambda log M - lambda k and
    KL = -(E_rho[x] - a)/lambda - log M. Nodes where a sum is not positive or finite
    get value -inf and a positive slope: the optimum lies above them."""
    param = np.exp(u)[:, None, None, :]  # (B, 1, 1, L)
    kk = ks[None, None, :, None]
    s0, s1 = s0[:, :, None, :], s1[:, :, None, :]
    with np.errstate(all="ignore"):
        h, d = divergence.node_duals(param, s0, s1, kk, edge_x)
    bad = ~(np.isfinite(h) & np.isfinite(d)) | (s0 <= 0)
    return np.where(bad, -np.inf, h), np.where(bad, np.inf, d)


def _hermite_max(ua, ub, ha, hb, da, db) -> tuple[np.ndarray, np.ndarray]:
    """Maximum over [ua, ub] of the cubic with values ha, hb and slopes da > 0 >= db at the ends,
    never below max(ha, hb) (each node's dual is a lower bound), and where it lies."""
    w = ub - ua
    with np.errstate(all="ignore"):
        # p'(s) = a s^2 + b s + c on s in [0, 1], p' (c > 0) falling to w db <= 0
        a = 6.0 * (ha - hb) + 3.0 * w * (da + db)
        b = -6.0 * (ha - hb) - 4.0 * w * da - 2.0 * w * db
        c = w * da
        disc = np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0))
        # the root where p' turns negative, in the stable form of the quadratic formula
        quad = -0.5 * (b + np.copysign(disc, b))
        roots = np.stack([np.where(np.abs(a) > 1e-300, quad / a, np.inf), c / quad], -1)
        ok = (roots >= 0) & (roots <= 1) & np.isfinite(roots)
        s = np.where(ok, roots, 0.0)
        values = ha[..., None] * (2 * s**3 - 3 * s**2 + 1) + w[..., None] * da[..., None] * (
            s**3 - 2 * s**2 + s
        )
        values += hb[..., None] * (-2 * s**3 + 3 * s**2) + w[..., None] * db[..., None] * (s**3 - s**2)
        values = np.where(ok, values, -np.inf)
        pick = values.argmax(-1)
        best = np.take_along_axis(values, pick[..., None], -1)[..., 0]
        where = np.take_along_axis(s, pick[..., None], -1)[..., 0]
    best = np.where(np.isfinite(best), best, -np.inf)
    # a node beats the cubic only where the cubic is off: then the optimum is near that node
    at_node = np.where(ha >= hb, 0.0, 1.0)
    where = np.where(best >= np.maximum(ha, hb), where, at_node)
    return np.maximum(best, np.maximum(ha, hb)), ua + where * w
