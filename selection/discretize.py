r"""From reward-state samples to the atoms of q: ragged stacking and shared quantile bins.

Without binning every sample is an atom (:math:`q_j = 1/T`). With binning, the samples'
chosen columns (psi alone, or state features) are cut at quantile edges computed once over
the samples of *all* checkpoints pooled, so bin j means the same region for every
candidate; checkpoint c then has :math:`q_{cj}` = its share of samples in bin j and
:math:`\psi_{cj}` = its mean psi there. Empty bins get zero weight (outside the support).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ArrayLike = np.ndarray | Sequence[np.ndarray]


@dataclass(frozen=True)
class Bins:
    """Per-checkpoint distributions over shared bins. Shapes: B checkpoints, J bins."""

    q: np.ndarray
    """(B, J) share of each checkpoint's samples in each bin (rows sum to 1)."""
    psi: np.ndarray
    """(B, J) mean psi of the checkpoint's samples in the bin; 0 where the bin is empty."""
    count: np.ndarray
    """(B, J) number of samples in the bin."""
    edges: tuple[np.ndarray, ...]
    """Inner edges per binned column (len(edges[d]) + 1 bins along column d)."""
    columns: tuple[str | int, ...]
    """What was binned: "psi" and/or feature column indices, in edge order."""


def stack(psi: ArrayLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Stack per-checkpoint sample arrays of possibly different lengths.

    Returns ``(psi, weights)``: psi of shape (B, n_max), padded with zeros, and weights
    that are 1 on real samples and 0 on padding (None when no padding was needed). Pass
    both to :func:`~postconv.selection.estimators`.
    """
    if isinstance(psi, np.ndarray):
        return np.atleast_2d(psi), None
    rows = [np.asarray(p, dtype=np.float64).reshape(-1) for p in psi]
    if not rows:
        raise ValueError("no checkpoints given; pass one array of samples per checkpoint")
    lengths = [r.size for r in rows]
    if min(lengths) == max(lengths):
        return np.stack(rows), None
    out = np.zeros((len(rows), max(lengths)))
    weights = np.zeros_like(out)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
        weights[i, : r.size] = 1.0
    return out, weights


def quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges at the 1/bins, ..., (bins-1)/bins quantiles of pooled values.

    The quantiles are sample values (no interpolation), and repeated edges (values with
    atoms, such as a term that is often exactly 0) are merged, so fewer than ``bins`` bins
    may result; every bin holds pooled samples.
    """
    if int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a positive integer; got {bins!r}")
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("cannot compute quantile edges of zero samples")
    if not np.all(np.isfinite(values)):
        raise ValueError("values to bin contain NaN or inf; drop or repair those samples first")
    inner = np.quantile(values, np.arange(1, int(bins)) / bins, method="inverted_cdf")
    # Merge repeated edges, and drop one at the minimum: a bin (-inf, min) would be empty.
    return np.unique(inner[inner > values.min()])


def discretize(
    psi: ArrayLike,
    features: ArrayLike | None = None,
    on: Sequence[str | int] = ("psi",),
    bins: int | Sequence[int] = 16,
    edges: Sequence[np.ndarray] | None = None,
) -> Bins:
    """Bin every checkpoint's samples on shared quantile edges.

    Args:
        psi: (B, n) array or a list of B arrays of shape (n_b,): performance per sample.
        features: None, a (B, n, D) array, or a list of (n_b, D) arrays: state features.
        on: what to bin on: ``"psi"`` and/or feature column indices, e.g. ``("psi", 0, 2)``.
            Bins are the cells of the product grid over these columns.
        bins: bins per column (an int for all, or one per entry of ``on``).
        edges: precomputed inner edges per entry of ``on`` (e.g. from another run), to
            bin new checkpoints exactly like earlier ones; ``bins`` is then ignored.

    Returns:
        :class:`Bins` with q, psi and counts of shape (B, J), J the number of grid cells.
    """
    psi_rows = _rows(psi, "psi")
    columns = tuple(on)
    if not columns:
        raise ValueError('on is empty; bin on "psi" and/or feature column indices')
    feat_rows = None if features is None else _rows(features, "features", ndim=2)
    if feat_rows is not None and [f.shape[0] for f in feat_rows] != [p.size for p in psi_rows]:
        raise ValueError("features must hold one row per sample of psi, checkpoint by checkpoint")
    if len(psi_rows) != (len(feat_rows) if feat_rows is not None else len(psi_rows)):
        raise ValueError("psi and features must have the same number of checkpoints")

    def column(rows_i: int, c: str | int) -> np.ndarray:
        if c == "psi":
            return psi_rows[rows_i]
        if feat_rows is None:
            raise ValueError(f"cannot bin on feature column {c!r}: no features were given")
        d = feat_rows[rows_i].shape[1]
        if not isinstance(c, int | np.integer) or not -d <= c < d:
            raise ValueError(f"feature column {c!r} does not exist; features have {d} columns")
        return feat_rows[rows_i][:, c]

    per_col_bins = [bins] * len(columns) if np.ndim(bins) == 0 else list(bins)
    if len(per_col_bins) != len(columns):
        raise ValueError(f"bins has {len(per_col_bins)} entries for {len(columns)} binned columns")
    if edges is None:
        edges = [
            quantile_edges(np.concatenate([column(i, c) for i in range(len(psi_rows))]), b)
            for c, b in zip(columns, per_col_bins, strict=True)
        ]
    elif len(edges) != len(columns):
        raise ValueError(f"edges has {len(edges)} entries for {len(columns)} binned columns")
    edges = tuple(np.asarray(e, dtype=np.float64) for e in edges)
    sizes = [e.size + 1 for e in edges]
    n_cells = int(np.prod(sizes))

    count = np.zeros((len(psi_rows), n_cells))
    total = np.zeros_like(count)
    for i, p in enumerate(psi_rows):
        index = np.zeros(p.size, dtype=np.int64)
        for c, e, size in zip(columns, edges, sizes, strict=True):
            index = index * size + np.searchsorted(e, column(i, c), side="right")
        count[i] = np.bincount(index, minlength=n_cells)
        total[i] = np.bincount(index, weights=p, minlength=n_cells)
    q = count / count.sum(axis=1, keepdims=True)
    mean_psi = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return Bins(q=q, psi=mean_psi, count=count.astype(np.int64), edges=edges, columns=columns)


def _rows(x: ArrayLike, name: str, ndim: int = 1) -> list[np.ndarray]:
    if isinstance(x, np.ndarray):
        if x.ndim == ndim:
            x = x[None]
        if x.ndim != ndim + 1:
            raise ValueError(
                f"{name} must have {ndim + 1} dimensions (checkpoints, samples...); got {x.ndim}"
            )
        rows = list(x)
    else:
        rows = [np.asarray(r, dtype=np.float64) for r in x]
    for r in rows:
        if r.ndim != ndim or r.shape[0] == 0:
            raise ValueError(
                f"each checkpoint's {name} must be a non-empty {ndim}-D array; got shape {r.shape}"
            )
        if not np.all(np.isfinite(r)):
            raise ValueError(f"{name} contains NaN or inf; drop or repair those samples before binning")
    return [np.asarray(r, dtype=np.float64) for r in rows]
