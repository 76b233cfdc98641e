"""A samples file (``.npz``) as a :class:`~postconv.selection.source.SampleSource`, read in chunks.

``postconv select FILE.npz`` on samples of GPU size (tens of checkpoints x millions of
samples) must not hold them all: an ``.npz`` written by ``numpy.savez`` stores its arrays
uncompressed, so psi and the weights can be read a block of columns at a time straight
from the file, with plain reads (as the run's sample store is,
:mod:`postconv.storage.store_source`). A compressed file (``numpy.savez_compressed``) cannot be
read that way; :class:`NotStreamable` says so and the caller loads it whole.
"""

from __future__ import annotations

import math
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from postconv.selection.source import Chunk
from postconv.storage.samples_file import check_layout, check_numeric, open_npz, read_names, read_sense
from postconv.storage.store_source import COLUMNS, NpyRows, npy_header, with_progress

_LOCAL_HEADER = 30  # bytes of a zip local file header before its name and extra field


class NotStreamable(ValueError):
    """The file is a valid samples file but cannot be read in chunks (the reason says why)."""


def psi_shape(path: Path) -> tuple[int, ...] | None:
    """psi's shape from its header alone (compressed or not); None where the file is not a
    readable samples file (loading it then says what is wrong)."""
    try:
        with open_npz(path) as data, data.zip.open(_member(data, "psi")) as f:
            return npy_header(f)[0]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def _member(data: np.lib.npyio.NpzFile, key: str) -> str:
    return key if key in data.zip.namelist() else f"{key}.npy"


def _reader(path: Path, data: np.lib.npyio.NpzFile, key: str, numeric: bool = True) -> NpyRows:
    """A plain reader of member ``key``, which must be stored uncompressed (``numpy.savez``)
    and whole (and hold numbers, unless ``numeric`` is False: group labels may be strings)."""
    info = data.zip.getinfo(_member(data, key))
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        raise NotStreamable(
            f"{path}: {key} is compressed, so it cannot be read in chunks; "
            "write the file with numpy.savez (not savez_compressed) to stream it"
        )
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(_LOCAL_HEADER)
    if local[:4] != b"PK\x03\x04":
        raise ValueError(f"{path}: damaged zip (no local header for {key}); write it again with numpy.savez")
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    start = info.header_offset + _LOCAL_HEADER + name_length + extra_length
    reader = NpyRows(path, start)
    if numeric:
        check_numeric(path, key, reader)
    elif reader.dtype.hasobject:
        raise ValueError(f"{path}: {key} holds Python objects; store numbers or strings")
    size = reader.offset - start + math.prod(reader.shape) * reader.dtype.itemsize
    if size > info.file_size:
        raise ValueError(
            f"{path}: {key} is truncated ({info.file_size} of {size} bytes); write the file again"
        )
    return reader


class NpzSource:
    """The samples of an uncompressed samples file (:mod:`postconv.storage.samples_file`) as a source.

    psi, the weights and the groups are read ``columns`` samples of every checkpoint at a
    time; only the names, the sense and the distinct group labels are held. float32 psi
    stays float32, any other becomes float64.

    Raises:
        ValueError: the file is not a valid samples file (the message names the fix).
        NotStreamable: valid, but compressed or with groups that differ between checkpoints.
    """

    def __init__(self, path: str | Path, progress=None, columns: int = COLUMNS):
        self.path, self.progress, self.columns = Path(path), progress, int(columns)
        with open_npz(self.path) as data:
            self.psi = _reader(self.path, data, "psi")
            self.names = read_names(self.path, data, self.psi.shape)
            self.sense = read_sense(self.path, data)
            self.weights = _reader(self.path, data, "weights") if "weights" in data else None
            self.labels = _reader(self.path, data, "groups", numeric=False) if "groups" in data else None
        n = self.psi.shape[1]
        check_layout(
            self.path,
            self.psi.shape,
            (n,) if self.labels is None else self.labels.shape,
            None if self.weights is None else self.weights.shape,
        )
        # without groups every sample is its own; else the distinct labels, sorted: a chunk's
        # groups are its labels' ranks among them
        self.distinct = None if self.labels is None else self._distinct_labels()
        self._n_groups = n if self.distinct is None else len(self.distinct)

    def _label_block(self, start: int, stop: int, rows: int | None = None) -> np.ndarray:
        """Labels of columns ``start:stop``: (c,) stored as (n,), (rows, c) stored as (B, n)
        (all B rows when None)."""
        if len(self.labels.shape) == 1:
            return self.labels.read(start, stop)
        return self.labels.columns(start, stop, rows)

    def _distinct_labels(self) -> np.ndarray:
        """One pass over the labels: their sorted distinct values; (B, n) labels must repeat
        one row."""
        n = self.psi.shape[1]
        distinct, pending, held = np.empty(0, dtype=self.labels.dtype), [], 0
        for start in range(0, n, self.columns):
            block = self._label_block(start, min(n, start + self.columns))
            if block.ndim == 2:
                if not (block == block[:1]).all():
                    raise NotStreamable(
                        f"{self.path}: the checkpoints' groups differ; a streamed bootstrap needs one group "
                        "per sample shared by every checkpoint (store groups of shape (n,))"
                    )
                block = block[0]
            pending.append(np.unique(block))
            held += len(pending[-1])
            if held > 4 * max(len(distinct), self.columns):  # merged now and then: amortized
                distinct, pending, held = np.unique(np.concatenate([distinct, *pending])), [], 0
        return np.unique(np.concatenate([distinct, *pending]))

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(v) for v in self.psi.shape)

    @property
    def n_groups(self) -> int:
        return self._n_groups

    @property
    def dtype(self) -> torch.dtype:
        single = self.psi.dtype.kind == "f" and self.psi.dtype.itemsize == 4  # either byte order
        return torch.float32 if single else torch.float64

    def _groups(self, start: int, stop: int) -> torch.Tensor:
        if self.distinct is None:
            return torch.arange(start, stop, dtype=torch.int64)
        block = self._label_block(start, stop, rows=1)  # (B, n) rows were checked equal
        labels = block if block.ndim == 1 else block[0]
        return torch.from_numpy(np.searchsorted(self.distinct, labels).astype(np.int64))

    def chunks(self, purpose: str) -> Iterator[Chunk]:
        n = self.shape[1]
        return with_progress(self._chunks(), self.progress, purpose, -(-n // self.columns))

    def _chunks(self) -> Iterator[Chunk]:
        n = self.shape[1]
        dtype = np.float32 if self.dtype == torch.float32 else np.float64
        for start in range(0, n, self.columns):
            stop = min(n, start + self.columns)
            psi = torch.from_numpy(np.ascontiguousarray(self.psi.columns(start, stop), dtype=dtype))
            weights = None
            if self.weights is not None:
                weights = torch.from_numpy(
                    np.ascontiguousarray(self.weights.columns(start, stop), dtype=dtype)
                )
            yield Chunk(psi=psi, weights=weights, groups=self._groups(start, stop))
