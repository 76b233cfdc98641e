"""A run's per-step samples as a :class:`~postconv.selection.source.SampleSource`, read in chunks.

On a GPU the stage records millions of steps per checkpoint (4096 envs x 1000 steps x 3
scenarios is 12 million), more than the selection should hold: this source hands them to
the solvers a block of consecutive steps of one sample folder at a time, for every
checkpoint at once, read with plain file reads (no memory map, so the process keeps only
the block). The samples are those :func:`~postconv.storage.sample_store.to_sample_set` would
stack for ``unit="step"``, in the same order, with the same weights (1 on settled steps, 0
on a respawn's burn-in) and the same bootstrap groups (seed, env slot). The settled masks
are computed once, streaming, and kept packed (one bit a step) in a temporary folder.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from postconv.selection.source import Chunk
from postconv.storage.sample import steps_since_reset, term_vector
from postconv.storage.sample_store import SampleIndex, read_meta

COLUMNS = 1 << 16
"""Samples per chunk and checkpoint (whole steps of a folder: about this many)."""


def npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) of the ``.npy`` data at the file's position; the
    position moves to the first byte of the array."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(f)


class NpyRows:
    """Reads row ranges of a C-ordered ``.npy`` file (or column ranges of a 2-D array in either
    order) with plain reads; ``at``: the byte where the array begins (an ``.npz`` member's)."""

    def __init__(self, path: Path, at: int = 0):
        self.path = path
        with open(path, "rb") as f:
            f.seek(at)
            shape, fortran, dtype = npy_header(f)
            self.offset = f.tell()
        self.shape, self.dtype, self.fortran = shape, dtype, fortran
        self.row = int(np.prod(shape[1:], dtype=np.int64))

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as an array of shape (stop - start, *shape[1:])."""
        if self.fortran:
            raise ValueError(f"{self.path}: stored in Fortran order; the sample store writes C order")
        with open(self.path, "rb") as f:
            f.seek(self.offset + start * self.row * self.dtype.itemsize)
            out = np.fromfile(f, dtype=self.dtype, count=(stop - start) * self.row)
        return out.reshape(stop - start, *self.shape[1:])

    def columns(self, start: int, stop: int, rows: int | None = None) -> np.ndarray:
        """Columns ``start:stop`` of the first ``rows`` rows (all when None) of a 2-D array:
        (rows, stop - start)."""
        n = self.shape[1]
        rows = self.shape[0] if rows is None else rows
        size = self.dtype.itemsize
        with open(self.path, "rb") as f:
            if self.fortran:  # a column is contiguous: one read
                height = self.shape[0]
                f.seek(self.offset + start * height * size)
                block = np.fromfile(f, dtype=self.dtype, count=(stop - start) * height)
                return block.reshape(-1, height).T[:rows]
            out = np.empty((rows, stop - start), dtype=self.dtype)
            for r in range(rows):
                f.seek(self.offset + (r * n + start) * size)
                out[r] = np.fromfile(f, dtype=self.dtype, count=stop - start)
        return out


def settled_rows(folder: Path, rows: int) -> Iterator[np.ndarray]:
    """:func:`~postconv.storage.sample_store.settled` of a folder, ``rows`` steps at a time.

    The steps since the last reset carry over from block to block (an env's last reset and
    the previous step's episode index), so the result equals the whole-folder one."""
    meta = read_meta(folder) or {}
    burn_in = int(meta.get("spec", {}).get("burn_in_steps", 0))
    age = np.asarray(meta.get("age_at_start", burn_in))
    episode, terminated = NpyRows(folder / "episode.npy"), NpyRows(folder / "terminated.npy")
    t_total = episode.shape[0]
    previous = since = None  # the episode index and steps since reset at the block's last step
    for start in range(0, t_total, rows):
        stop = min(t_total, start + rows)
        block = episode.read(start, stop)
        if previous is not None:  # an env's age at the block's first step: 0 where it reset there
            age = np.where(block[0] != previous, 0, since + 1)
        steps = steps_since_reset(block, age)
        previous, since = block[-1], steps[-1]
        yield (steps >= burn_in) | terminated.read(start, stop)


def _bits(packed: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Bits ``start:stop`` of a packed bit array, unpacked (reads only their bytes)."""
    first = start // 8
    return np.unpackbits(packed[first : (stop + 7) // 8])[start - 8 * first : stop - 8 * first]


def with_progress(chunks: Iterator[Chunk], progress, purpose: str, total: int) -> Iterator[Chunk]:
    """``chunks``, shown as a task named ``purpose`` of ``total`` steps on a
    :class:`rich.progress.Progress` (None: not shown), removed when the pass ends."""
    task = None if progress is None else progress.add_task(purpose, total=total)
    try:
        for chunk in chunks:
            yield chunk
            if task is not None:
                progress.advance(task)
    finally:
        if task is not None:
            progress.remove_task(task)


class StoreSource:
    """The per-step samples of ``checkpoints`` over ``scenarios`` as a sample source.

    Args:
        index: the run's sample folders (:func:`~postconv.storage.sample_store.find_samples`).
        checkpoints: the checkpoints to rank, in order; each must have a folder for every
            (scenario, seed) ``units`` lists.
        units: the (scenario, seed) pairs pooled, in the order of the samples.
        term_weights: psi as a weighted sum of reward terms (None: the task reward).
        progress: a :class:`rich.progress.Progress` to show each pass on, or None.
        masks: a folder the settled masks are cached in, shared by the sources of one run
            (each folder's mask is then computed once for all pools of scenarios); None: a
            temporary folder of this source's own, deleted by :meth:`close`.
    """

    def __init__(
        self,
        index: SampleIndex,
        checkpoints: list[str],
        units: list[tuple[str, int]],
        term_weights: dict[str, float] | None = None,
        progress=None,
        masks: Path | None = None,
    ):
        self.index, self.names, self.units = index, list(checkpoints), list(units)
        self.term_weights, self.progress = term_weights, progress
        self.shapes = {}
        for scenario, seed in self.units:
            shapes = {index.steps[(scenario, c, seed)] for c in self.names}
            if len(shapes) != 1:
                raise ValueError(
                    f"the checkpoints have samples of different shapes {sorted(shapes)} for {scenario} seed {seed}: "
                    "the evaluations differ; re-run `postconv evaluate` with one configuration"
                )
            self.shapes[(scenario, seed)] = shapes.pop()
        seeds = sorted({seed for _, seed in self.units})
        widths = {seed: max(self.shapes[u][1] for u in self.units if u[1] == seed) for seed in seeds}
        self.group_offset = dict(zip(seeds, np.cumsum([0] + [widths[s] for s in seeds[:-1]]), strict=True))
        self._n_groups = int(sum(widths.values()))
        self._own_masks = masks is None
        self._masks = Path(tempfile.mkdtemp(prefix="postconv-settled-")) if masks is None else masks
        self._weights = None if term_weights is None else term_vector(term_weights, index.term_names)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.names), int(sum(t * m for t, m in self.shapes.values()))

    @property
    def n_groups(self) -> int:
        return self._n_groups

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def rows_per_chunk(self, m: int) -> int:
        return max(1, COLUMNS // m)

    def chunks(self, purpose: str) -> Iterator[Chunk]:
        total = sum(-(-t // self.rows_per_chunk(m)) for t, m in self.shapes.values())
        chunks = (chunk for scenario, seed in self.units for chunk in self._folder_chunks(scenario, seed))
        return with_progress(chunks, self.progress, purpose, total)

    def _folder_chunks(self, scenario: str, seed: int) -> Iterator[Chunk]:
        t_total, m = self.shapes[(scenario, seed)]
        rows = self.rows_per_chunk(m)
        folders = [self.index.folders[(scenario, c, seed)] for c in self.names]
        psi_files = [NpyRows(f / ("psi.npy" if self._weights is None else "terms.npy")) for f in folders]
        masks = [self._mask(scenario, c, seed, rows) for c in self.names]
        slots = torch.as_tensor(self.group_offset[seed] + np.arange(m), dtype=torch.int64)
        for start in range(0, t_total, rows):
            stop = min(t_total, start + rows)
            psi = np.stack([self._psi(f.read(start, stop)) for f in psi_files]).reshape(len(folders), -1)
            keep = np.stack([_bits(mk, start * m, stop * m) for mk in masks])
            yield Chunk(
                psi=torch.from_numpy(psi),
                weights=torch.from_numpy(keep.astype(np.float32)),
                groups=slots.repeat(stop - start),
            )

    def _psi(self, block: np.ndarray) -> np.ndarray:
        return block if self._weights is None else block @ self._weights

    def _mask(self, scenario: str, checkpoint: str, seed: int, rows: int) -> np.ndarray:
        """The folder's settled steps, packed one bit a step, memory-mapped from the cache."""
        path = self._masks / f"{scenario}__{checkpoint}__{seed}.npy"
        if not path.exists():
            folder = self.index.folders[(scenario, checkpoint, seed)]
            bits = np.packbits(np.concatenate([b.reshape(-1) for b in settled_rows(folder, rows)]))
            np.save(path, bits)
        return np.load(path, mmap_mode="r")

    def close(self) -> None:
        """Delete the cached masks, unless the caller gave the folder."""
        if self._own_masks:
            shutil.rmtree(self._masks, ignore_errors=True)

    def __enter__(self) -> StoreSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
