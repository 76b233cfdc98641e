"""The fast solver's passes over a :class:`~postconv.selection.source.SampleSource`.

The solver (:mod:`postconv.selection.estimators`) reads its samples through two things:
the per-row statistics it starts from and the moment passes of its Newton/Halley steps.
Here both stream over the source's chunks, so memory is one chunk plus a fixed-size
subsample (the warm start's) whatever the number of samples:

- two passes for the statistics: the minimum and total weight, then the moments about the
  minimum (and the strided subsample);
- one pass per solver step (three to five from the warm start);
- one float64 pass for the values (float32 samples).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from postconv.selection.estimators import (
    _FLOAT32_CHUNK,
    _WARM_SAMPLES,
    _chunk_columns,
    _reduce,
    _Rows,
    _rows_from_sums,
    rough_multipliers,
)
from postconv.selection.source import Chunk, SampleSource

_SUBSAMPLE = 1 << 17  # columns per row kept for the warm start
_SUBSAMPLE_ELEMENTS = 1 << 23  # ... and elements in all


def checked_chunks(source: SampleSource, purpose: str) -> Iterator[Chunk]:
    """The source's chunks, each checked for what the solvers cannot take. The first pass of
    a solve reads through this; later passes, the same chunks by contract, do not."""
    b, _ = source.shape
    offset = 0
    for chunk in source.chunks(purpose):
        c = chunk.psi.shape[1]
        if chunk.psi.shape != (b, c) or chunk.groups.shape != (c,):
            raise ValueError(
                f"the sample source gave a chunk of psi {tuple(chunk.psi.shape)} and groups "
                f"{tuple(chunk.groups.shape)}; expected ({b}, c) and (c,): fix the source"
            )
        if chunk.weights is not None and chunk.weights.shape != (b, c):
            raise ValueError(
                f"the sample source gave weights of shape {tuple(chunk.weights.shape)} for psi {(b, c)}: fix the source"
            )
        if c and (int(chunk.groups.min()) < 0 or int(chunk.groups.max()) >= source.n_groups):
            raise ValueError(
                f"the sample source gave group labels outside 0..{source.n_groups - 1}: fix the source"
            )
        bad = ~torch.isfinite(chunk.psi)
        if bool(bad.any()):
            row, col = (int(i) for i in torch.nonzero(bad)[0])
            raise ValueError(
                f"psi contains NaN or inf (checkpoint {row}, sample {offset + col}); "
                "drop or repair those samples before estimating"
            )
        if chunk.weights is not None and bool(
            (chunk.weights < 0).any() | ~torch.isfinite(chunk.weights).all()
        ):
            raise ValueError("weights must be finite and non-negative; the sample source gave another")
        offset += c
        yield chunk


class StreamedSamples:
    """The ``x`` of a streamed problem's :class:`_Rows`: signed samples, shifted by each row's
    minimum on the fly. :func:`~postconv.selection.estimators._moments` calls :meth:`moments`."""

    def __init__(
        self, source: SampleSource, sign: float, dtype: torch.dtype, low: np.ndarray, mass: np.ndarray
    ):
        self.source, self.sign, self.dtype = source, sign, dtype
        self.low, self.mass = low, mass
        self.passes = 0

    def shifted(
        self, purpose: str, idx: np.ndarray | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """Per chunk: x (R, c) = signed - minimum (0 off the support) and the weights
        normalized per row (None: uniform), for rows ``idx`` (all when None)."""
        rows = slice(None) if idx is None else torch.as_tensor(idx)
        low = torch.as_tensor(self.low if idx is None else self.low[idx])
        mass = torch.as_tensor(self.mass if idx is None else self.mass[idx])
        for chunk in self.source.chunks(purpose):  # checked in the first pass (the minimum's)
            signed = (chunk.psi[rows] * self.sign).to(self.dtype)
            lo = low.to(device=signed.device, dtype=self.dtype)[:, None]
            if chunk.weights is None:
                yield signed - lo, None
                continue
            w = chunk.weights[rows].to(self.dtype)
            x = torch.where(w > 0, signed - lo, torch.zeros((), dtype=self.dtype, device=signed.device))
            yield x, w / mass.to(device=w.device, dtype=self.dtype)[:, None]

    def moments(self, rows: _Rows, idx: np.ndarray, params: np.ndarray, kind: str) -> tuple[np.ndarray, ...]:
        """:func:`~postconv.selection.estimators._moments` over the source's chunks."""
        self.passes += 1
        r, kk = params.shape
        m, dt = (4 if kind == "kl" else 1), self.dtype
        # as in memory: the same sub-chunks in every pass, whatever rows remain to do
        step = _chunk_columns(self.source.shape[0], kk, 1 << 62)
        if dt == torch.float32:
            step = min(step, _FLOAT32_CHUNK)
        total = p = buf = powers = None
        uniform = True
        for x, q in self.shifted(f"solving: pass {self.passes}", idx):
            if total is None:
                dev = x.device
                total = torch.zeros((r, kk, 4 if kind == "kl" else 3), dtype=torch.float64, device=dev)
                p = torch.as_tensor(params, dtype=dt, device=dev)[:, :, None]
                buf = torch.empty((r, kk, step), dtype=dt, device=dev)
                powers = torch.empty((r, m, step), dtype=dt, device=dev)
            uniform = q is None
            for start in range(0, x.shape[1], step):
                xc = x[:, start : start + step]
                w = xc.shape[1]
                basis = powers[..., :w]
                if q is None:
                    basis[:, 0].fill_(1.0)
                else:
                    basis[:, 0].copy_(q[:, start : start + step])
                for j in range(1, m):
                    torch.mul(basis[:, j - 1], xc, out=basis[:, j])
                _reduce(basis, xc, p, buf[..., :w], total, kind)
        if uniform:
            total /= self.source.shape[1]
        out = total.cpu().numpy()
        return tuple(out[..., i] for i in range(4 if kind == "kl" else 3))


class StreamedProblem:
    """A signed problem (see :class:`~postconv.selection.estimators._Problem`) read from a source."""

    def __init__(self, source: SampleSource, sense: str, dtype: torch.dtype | None = None):
        self.source = source
        self.sign = 1.0 if sense == "reward" else -1.0
        self.dtype = dtype or source.dtype
        self.batch = source.shape[0]
        self.device = torch.device("cpu")
        self._sub: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def rows(self, radii: int) -> _Rows:
        low, mass = self._minimum_and_mass()
        f64 = torch.float64
        b, n = self.source.shape
        s = np.zeros((3, b))
        q_min, top = np.zeros(b), np.zeros(b)
        stats = StreamedSamples(self.source, self.sign, self.dtype, low, mass)
        # per row about _SUBSAMPLE columns, and not more than _SUBSAMPLE_ELEMENTS in all (a
        # source of many rows, such as the bootstrap's replicates left to an exact solve)
        stride = max(8, n // _SUBSAMPLE, -(-b * n // _SUBSAMPLE_ELEMENTS)) if n >= 8 * _WARM_SAMPLES else 0
        # the subsample is filled in place: small tensors kept from every chunk would pin the
        # freed chunk-sized blocks between them, and the heap would grow with the samples read
        sub_x = torch.empty((b, -(-n // stride) if stride else 0), dtype=self.dtype)
        sub_q = torch.empty_like(sub_x)
        offset, uniform = 0, True
        for x, q in stats.shifted("reading: moments"):
            uniform = q is None
            qx = x if q is None else q * x
            qxx = qx * x
            for j, term in enumerate((qx, qxx, qxx * x)):
                s[j] += term.sum(-1, dtype=f64).cpu().numpy()
            at_min = x == 0 if q is None else (x == 0) & (q > 0)
            q_min += (at_min.sum(-1) if q is None else (q * at_min).sum(-1, dtype=f64)).cpu().numpy()
            top = np.maximum(
                top, (x if q is None else torch.where(q > 0, x, 0.0)).amax(-1).double().cpu().numpy()
            )
            if stride:
                first = (-offset) % stride
                cols = slice(first, None, stride)
                at = (offset + first) // stride
                picked = x[:, cols]
                sub_x[:, at : at + picked.shape[1]] = (
                    picked.cpu() + torch.as_tensor(low, dtype=self.dtype)[:, None]
                )
                if q is not None:
                    sub_q[:, at : at + picked.shape[1]] = q[:, cols].cpu()
            offset += x.shape[1]
        if uniform:
            s, q_min = s / n, q_min / n
        if stride:
            self._sub = (sub_x, None if uniform else sub_q)
        return _rows_from_sums(stats, None, low, s[0], s[1], s[2], top, q_min)

    def _minimum_and_mass(self) -> tuple[np.ndarray, np.ndarray]:
        """(B,) each row's signed minimum over its support and its total weight: one pass."""
        b, n = self.source.shape
        low = torch.full((b,), torch.inf, dtype=torch.float64)
        mass = torch.zeros(b, dtype=torch.float64)
        chunk = None
        for chunk in checked_chunks(self.source, "reading: minimum"):
            signed = chunk.psi * self.sign
            if chunk.weights is not None:
                signed = torch.where(chunk.weights > 0, signed, torch.inf)
                mass += chunk.weights.sum(-1, dtype=torch.float64).cpu()
            low = torch.minimum(low, signed.amin(-1).double().cpu())
        if chunk is None:
            raise ValueError("the sample source gave no chunks; it must hand out every sample once per pass")
        if chunk.weights is None:
            mass[:] = n
        if bool((mass <= 0).any()):
            rows = torch.nonzero(mass <= 0).reshape(-1).tolist()
            raise ValueError(
                f"weights of checkpoint(s) {rows} sum to zero; give every checkpoint at least one sample with positive weight"
            )
        return low.numpy(), mass.numpy()

    def warm_start(self, rows: _Rows, kgrid: np.ndarray, divergence: str) -> np.ndarray | None:
        if self._sub is None:
            return None
        return rough_multipliers(*self._sub, rows.low, kgrid, divergence)

    def in_float64(self) -> StreamedProblem:
        return StreamedProblem(self.source, "reward" if self.sign > 0 else "cost", torch.float64)

    def float64_chunks(self, columns: int) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        for chunk in self.source.chunks("solving: values in float64"):
            for start in range(0, chunk.psi.shape[1], columns):
                cols = slice(start, start + columns)
                x = chunk.psi[:, cols].double().cpu() * self.sign
                yield x, None if chunk.weights is None else chunk.weights[:, cols].double().cpu()
