"""A file of per-checkpoint performance samples (npz): what the selection reads.

Arrays in the file:

- ``psi``: (B, n) float, the performance of every sample (a step's reward, by default) for
  B checkpoints. Required.
- ``names``: (B,) str, the checkpoints' names (default ``ckpt_0`` ...).
- ``groups``: (n,) or (B, n) int, the episode or env each sample belongs to; the bootstrap
  resamples whole groups, for all checkpoints at once (paired) where they share the labels
  ((n,), or (B, n) with equal rows) and carry weight in the same groups, else each its own.
  Default: every sample its own group (no correlation assumed).
- ``weights``: (B, n) float, sample weights; zero marks padding of shorter checkpoints.
- ``sense``: scalar str, ``"reward"`` (larger is better, the default) or ``"cost"``.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SampleSet:
    """Samples of B checkpoints, n samples each (shorter ones padded with zero weight)."""

    psi: np.ndarray
    """(B, n) performance per sample."""
    names: tuple[str, ...]
    """(B,) checkpoint names."""
    groups: np.ndarray
    """(n,) or (B, n) episode/env id per sample."""
    weights: np.ndarray | None = None
    """(B, n) sample weights, or None for uniform."""
    sense: str = "reward"
    """"reward" (larger is better) or "cost"."""


def load_samples(path: str | Path) -> SampleSet:
    """Read and check a samples file; errors name the file, the array and the fix."""
    path = Path(path)
    with open_npz(path) as data:
        psi = np.asarray(check_numeric(path, "psi", data["psi"]), dtype=np.float64)
        names = read_names(path, data, psi.shape)
        groups = np.asarray(data["groups"]) if "groups" in data else np.arange(psi.shape[-1])
        weights = None
        if "weights" in data:
            weights = np.asarray(check_numeric(path, "weights", data["weights"]), dtype=np.float64)
        sense = read_sense(path, data)
    check_layout(path, psi.shape, groups.shape, None if weights is None else weights.shape)
    return SampleSet(psi=psi, names=names, groups=groups, weights=weights, sense=sense)


def open_npz(path: Path) -> np.lib.npyio.NpzFile:
    """The samples file opened lazily (arrays are read when asked for); it must hold psi."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such samples file; run `postconv select --demo` to see the format"
        )
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable npz file ({err}); write it with numpy.savez") from err
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{path}: a single array, not an npz archive; write it with numpy.savez(path, psi=psi, ...)"
        )
    if "psi" not in data:
        data.close()
        raise ValueError(f"{path}: no 'psi' array; store the (checkpoints, samples) performance as psi")
    return data


def read_names(path: Path, data, shape: tuple[int, ...]) -> tuple[str, ...]:
    """The checkpoints' names in an open npz (default ``ckpt_0`` ...), checked against psi's shape."""
    if len(shape) != 2:
        raise ValueError(f"{path}: psi must be 2-D (checkpoints, samples); got shape {shape}")
    b = shape[0]
    names = tuple(str(s) for s in data["names"]) if "names" in data else tuple(f"ckpt_{i}" for i in range(b))
    if len(names) != b:
        raise ValueError(f"{path}: {len(names)} names for {b} checkpoints in psi")
    if len(set(names)) != b:
        raise ValueError(f"{path}: checkpoint names repeat; give each checkpoint its own name")
    return names


def read_sense(path: Path, data) -> str:
    """``"reward"`` or ``"cost"`` from an open npz (default ``"reward"``)."""
    sense = str(data["sense"]) if "sense" in data else "reward"
    if sense not in ("reward", "cost"):
        raise ValueError(f"{path}: sense is {sense!r}; store 'reward' (larger is better) or 'cost'")
    return sense


def check_numeric(path: Path, name: str, array):
    """``array`` (anything with a dtype), if it holds numbers; else an error naming the fix."""
    if array.dtype.kind not in "fiub":
        raise ValueError(f"{path}: {name} has dtype {array.dtype}; store numbers (float32 or float64)")
    return array


def check_layout(
    path: Path, psi: tuple[int, ...], groups: tuple[int, ...], weights: tuple[int, ...] | None
) -> None:
    """The arrays' shapes agree with psi's (B, n), or an error names the array and the fix."""
    b, n = psi
    if groups not in ((n,), (b, n)):
        raise ValueError(f"{path}: groups has shape {groups}; expected ({n},) or ({b}, {n})")
    if weights is not None and weights != (b, n):
        raise ValueError(f"{path}: weights has shape {weights}; expected ({b}, {n})")


def save_samples(path: str | Path, samples: SampleSet) -> Path:
    """Write a samples file atomically (a reader never sees a half-written file)."""
    arrays = {
        "psi": samples.psi,
        "names": np.asarray(samples.names, dtype=str),
        "groups": samples.groups,
        "sense": np.asarray(samples.sense),
    }
    if samples.weights is not None:
        arrays["weights"] = samples.weights
    return atomic_write(Path(path), lambda f: np.savez(f, **arrays))


def atomic_write(path: Path, write) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
