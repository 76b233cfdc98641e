"""The fast solver's passes over a :class:`~postconv.selection.source.SampleSource`.

The solver (:mod:`postconv.selection.estimators`) reads its samples through two things:
the per-row statistics it starts from and the moment passes of its Newton/Halley steps.
Here both stream over the source's chunks, so memory is one chunk plus a fixed-size
subsample (the warm start's) whatever the number of samples:

- one pass for the statistics: the minimum, the total weight, the moments (about a
  provisional center, moved to the minimum at the end) and the strided subsample;
- one pass per solver step (three to five from the warm start);
- one float64 pass for the values (float32 samples).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from postconv.selection._dual import (
    _FLOAT32_CHUNK,
    _WARM_SAMPLES,
    _chunk_columns,
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
    minimum on the fly. :func:`~postconv.selection._dual._moments` calls :meth:`moments`."""

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
        for chunk in self.source.chunks(purpose):  # checked in the first pass (the statistics')
            signed = (chunk.psi[rows] * self.sign).to(self.dtype)
            lo = low.to(device=signed.device, dtype=self.dtype)[:, None]
            if chunk.weights is None:
                yield signed - lo, None
                continue
            w = chunk.weights[rows].to(self.dtype)
            x = torch.where(w > 0, signed - lo, torch.zeros((), dtype=self.dtype, device=signed.device))
            yield x, w / mass.to(device=w.device, dtype=self.dtype)[:, None]

    def moments(self, rows: _Rows, idx: np.ndarray, params: np.ndarray, divergence) -> tuple[np.ndarray, ...]:
        """:func:`~postconv.selection._dual._moments` over the source's chunks."""
        self.passes += 1
        r, kk = params.shape
        m, dt = divergence.powers, self.dtype
        # as in memory: the same sub-chunks in every pass, whatever rows remain to do
        step = _chunk_columns(self.source.shape[0], kk, 1 << 62)
        if dt == torch.float32:
            step = min(step, _FLOAT32_CHUNK)
        total = p = buf = powers = None
        uniform = True
        for x, q in self.shifted(f"solving: pass {self.passes}", idx):
            if total is None:
                dev = x.device
                total = torch.zeros((r, kk, divergence.sums), dtype=torch.float64, device=dev)
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
                divergence.reduce(basis, xc, p, buf[..., :w], total)
        if uniform:
            total /= self.source.shape[1]
        out = total.cpu().numpy()
        return tuple(out[..., i] for i in range(divergence.sums))


class StreamedProblem:
    """A signed problem (see :class:`~postconv.selection._dual._Problem`) read from a source."""

    def __init__(self, source: SampleSource, sense: str, dtype: torch.dtype | None = None):
        self.source = source
        self.sign = 1.0 if sense == "reward" else -1.0
        self.dtype = dtype or source.dtype
        self.batch = source.shape[0]
        self.device = torch.device("cpu")
        self._sub: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def rows(self, radii: int) -> _Rows:
        """The per-row statistics in one pass (the first of a solve, so it checks the chunks).

        The minimum is not known until the pass ends, so the moments are summed about a
        provisional center c (each row's minimum in its first chunk with weight) and moved to the
        minimum at the end: with D = c - min, E[(x+D)^j] expands binomially in float64. The
        weight at the minimum restarts whenever a chunk holds a lower one."""
        b, n = self.source.shape
        f64 = torch.float64
        low = high = center = c = sums = at_low = None  # on the chunks' device, from the first
        # per row about _SUBSAMPLE columns, and not more than _SUBSAMPLE_ELEMENTS in all (a
        # source of many rows, such as the bootstrap's replicates left to an exact solve)
        stride = max(8, n // _SUBSAMPLE, -(-b * n // _SUBSAMPLE_ELEMENTS)) if n >= 8 * _WARM_SAMPLES else 0
        # the subsample is filled in place: small tensors kept from every chunk would pin the
        # freed chunk-sized blocks between them, and the heap would grow with the samples read
        sub_x = torch.empty((b, -(-n // stride) if stride else 0), dtype=self.dtype)
        sub_q = torch.empty_like(sub_x)
        offset, uniform = 0, True
        for chunk in checked_chunks(self.source, "reading: statistics"):
            signed = (chunk.psi * self.sign).to(self.dtype)
            uniform = chunk.weights is None
            w = None if uniform else chunk.weights.to(self.dtype)
            on = None if uniform else w > 0
            inside = signed if uniform else torch.where(on, signed, torch.inf)
            chunk_low = inside.amin(-1).double()
            if center is None:
                dev = signed.device
                low = torch.full((b,), torch.inf, dtype=f64, device=dev)
                high = torch.full_like(low, -torch.inf)
                at_low = torch.zeros_like(low)
                sums = torch.zeros((4, b), dtype=f64, device=dev)  # weight, sum w (x - c)^j, j = 1..3
                center = torch.full_like(low, torch.nan)
            if bool(torch.isnan(center).any()):
                # a row's center is its first weighted chunk's minimum: its sums are 0 until
                # then, so setting it late is exact (padding values never become the center)
                center = torch.where(torch.isnan(center) & torch.isfinite(chunk_low), chunk_low, center)
                c = torch.nan_to_num(center, nan=0.0).to(self.dtype)[:, None]
            d = signed - c if uniform else torch.where(on, signed - c, 0.0)  # padding may be huge
            wd = d if uniform else w * d
            wdd = wd * d
            sums[0] += signed.shape[1] if uniform else w.sum(-1, dtype=f64)
            for j, term in enumerate((wd, wdd, wdd * d), start=1):
                sums[j] += term.sum(-1, dtype=f64)
            hit = inside == chunk_low.to(self.dtype)[:, None]
            chunk_at = hit.sum(-1, dtype=f64) if uniform else (w * hit).sum(-1, dtype=f64)
            at_low = torch.where(
                chunk_low < low, chunk_at, torch.where(chunk_low == low, at_low + chunk_at, at_low)
            )
            low = torch.minimum(low, chunk_low)
            high = torch.maximum(
                high, (signed if uniform else torch.where(on, signed, -torch.inf)).amax(-1).double()
            )
            if stride:
                first = (-offset) % stride
                cols = slice(first, None, stride)
                at = (offset + first) // stride
                picked = signed[:, cols] if uniform else torch.where(on[:, cols], signed[:, cols], c)
                sub_x[:, at : at + picked.shape[1]] = picked.cpu()
                if not uniform:
                    sub_q[:, at : at + picked.shape[1]] = w[:, cols].cpu()
            offset += signed.shape[1]
        if low is None:
            raise ValueError("the sample source gave no chunks; it must hand out every sample once per pass")
        mass = sums[0].cpu().numpy()
        if bool((mass <= 0).any()):
            rows = np.flatnonzero(mass <= 0).tolist()
            raise ValueError(
                f"weights of checkpoint(s) {rows} sum to zero; give every checkpoint at least one sample with positive weight"
            )
        m1, m2, m3 = sums[1:].cpu().numpy() / mass  # E[(x - c)^j]
        low, high = low.cpu().numpy(), high.cpu().numpy()
        shift = np.nan_to_num(center.cpu().numpy()) - low  # x - min = (x - c) + shift
        s1 = m1 + shift
        s2 = m2 + 2 * shift * m1 + shift**2
        s3 = m3 + 3 * shift * m2 + 3 * shift**2 * m1 + shift**3
        if stride:
            self._sub = (sub_x, None if uniform else sub_q)  # rough_multipliers normalizes q
        stats = StreamedSamples(self.source, self.sign, self.dtype, low, mass)
        return _rows_from_sums(stats, None, low, s1, s2, s3, high - low, at_low.cpu().numpy() / mass)

    def warm_start(self, rows: _Rows, kgrid: np.ndarray, divergence) -> np.ndarray | None:
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
