"""Samples read in column chunks: how the selection runs on more samples than fit in memory.

A :class:`SampleSource` hands out the samples of B checkpoints as a sequence of column
chunks, the same chunks in the same order on every call. The estimators make a few passes
over it (:func:`~postconv.selection.worst_case` and
:func:`~postconv.selection.bootstrap` accept one in place of an array), so memory is that
of one chunk whatever the number of samples. Where the samples live (memory, ``.npy``
files, a run's sample store) is the source's business; this module only defines the
contract and the in-memory source.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from postconv.selection import _validate


@dataclass(frozen=True)
class Chunk:
    """Columns ``c`` of every checkpoint's samples."""

    psi: torch.Tensor
    """(B, c) performance per sample, floating (float32 is summed in float32 chunks with
    float64 totals, as for arrays)."""
    weights: torch.Tensor | None
    """(B, c) non-negative sample weights, unnormalized (0 drops a sample), or None for 1."""
    groups: torch.Tensor
    """(c,) int64 bootstrap group of each column, in [0, G): shared by the B checkpoints."""


@runtime_checkable
class SampleSource(Protocol):
    """Samples of B checkpoints, n each, in G bootstrap groups, read in chunks.

    Contract: every call of :meth:`chunks` yields the same chunks (same boundaries, same
    values) in the same order: the solvers' float32 sums depend on the chunking, and a
    checkpoint's moments must not change between passes.
    """

    @property
    def shape(self) -> tuple[int, int]:
        """(B, n): checkpoints and samples per checkpoint."""

    @property
    def n_groups(self) -> int:
        """G: the number of bootstrap groups (group labels run over 0..G-1)."""

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the chunks' psi (float32 or float64)."""

    def chunks(self, purpose: str) -> Iterator[Chunk]:
        """One pass over all samples. ``purpose`` says what the pass is for (e.g.
        ``"solving: pass 3"``) so a source may show it on a progress bar."""


class ArraySource:
    """A :class:`SampleSource` over arrays in memory (tests, and samples files).

    Args:
        psi: (B, n) samples; float32 stays float32, anything else becomes float64.
        weights: None, (n,) or (B, n) non-negative weights.
        groups: None (every sample its own group) or (n,) labels of any integer values.
        columns: samples per chunk.
    """

    def __init__(self, psi, weights=None, groups=None, columns: int = 1 << 16):
        x = _validate.samples(psi)
        if x.ndim != 2:
            raise ValueError("a sample source needs psi of shape (B, n): one row of samples per checkpoint")
        if weights is not None:
            _validate.weights(weights, x)  # the checks only: the source hands out raw weights
            weights = torch.as_tensor(_validate.on_host(weights), dtype=x.dtype, device=x.device).expand_as(x)
        labels = np.arange(x.shape[1]) if groups is None else _validate.on_host(groups)
        if labels.shape != (x.shape[1],):
            raise ValueError(
                f"groups shape {labels.shape} does not match psi's {x.shape[1]} samples; pass one label per sample"
            )
        if int(columns) != columns or columns < 1:
            raise ValueError(f"columns must be a positive integer; got {columns!r}")
        dense = np.unique(labels, return_inverse=True)[1].reshape(-1)
        self.psi, self.weights, self.columns = x, weights, int(columns)
        self.groups = torch.as_tensor(dense, dtype=torch.int64)
        self._n_groups = int(dense.max()) + 1

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.psi.shape)

    @property
    def n_groups(self) -> int:
        return self._n_groups

    @property
    def dtype(self) -> torch.dtype:
        return self.psi.dtype

    def chunks(self, purpose: str) -> Iterator[Chunk]:
        n = self.psi.shape[1]
        for start in range(0, n, self.columns):
            cols = slice(start, min(n, start + self.columns))
            yield Chunk(
                psi=self.psi[:, cols],
                weights=None if self.weights is None else self.weights[:, cols],
                groups=self.groups[cols],
            )
