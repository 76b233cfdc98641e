"""The reward-state samples of a run, on disk in its folder.

Layout (``<run>/postconv/samples/<scenario>/<checkpoint>/seed_<s>/``), one folder per
checkpoint, scenario and seed, every array a NumPy ``.npy`` file (an open format; memory-
mappable, so readers need not load it whole):

- ``terms.npy``: (T, m, R) float32, the reward manager's weighted per-term values of every
  recorded step and env, scaled by the step's dt so that they sum to the step's reward;
- ``psi.npy``: (T, m) float32, the task reward of the step (the sum of the terms);
- ``features.npy``: (T, m, F) float32, state features read before the step's reset;
- ``episode.npy``: (T, m) int32, the env's episode index since the start of recording;
- ``terminated.npy`` / ``truncated.npy``: (T, m) bool, the step ended its episode by a
  termination / a time-out;
- ``meta.json``: task, scenario, seed, checkpoint (name, iteration, sha256), the
  evaluation's config and its hash, reward term and feature names, package version,
  throughput. Written last: its presence with a matching key marks the folder complete.

The env index is the column (0..m-1, the env's slot in its group). A folder is written
under a temporary name and renamed into place when complete, so a reader or a resumed
evaluation never sees a partial one; chunks stream into memory-mapped files, so memory
stays bounded whatever the rollout length.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from postconv.samples_file import SampleSet, atomic_write

STAGE_DIR = "postconv"
"""Everything postconv writes inside a run folder goes under this subfolder."""

ARRAYS = {
    "terms": np.float32,
    "psi": np.float32,
    "features": np.float32,
    "episode": np.int32,
    "terminated": np.bool_,
    "truncated": np.bool_,
}


def samples_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / STAGE_DIR / "samples"


def sample_dir(root: Path, scenario: str, checkpoint: str, seed: int) -> Path:
    return root / scenario / checkpoint / f"seed_{seed}"


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def config_hash(config: dict) -> str:
    """A short stable hash of a JSON-able dict (sorted keys)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def read_meta(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_complete(folder: Path, key: str) -> bool:
    """True if ``folder`` holds a finished sample set made with ``key`` and all its arrays."""
    meta = read_meta(folder)
    if meta is None or meta.get("key") != key:
        return False
    shapes = meta.get("shapes", {})
    for name in ARRAYS:
        try:
            arr = np.load(folder / f"{name}.npy", mmap_mode="r")
        except (OSError, ValueError):
            return False
        if list(arr.shape) != shapes.get(name):
            return False
    return True


class SampleWriter:
    """Streams one checkpoint x scenario x seed's samples into memory-mapped files.

    Shapes are fixed up front (T recorded steps, m envs, R terms, F features); chunks of
    consecutive steps are written with :meth:`write`, and :meth:`finish` publishes the
    folder atomically.
    """

    def __init__(self, folder: Path, steps: int, envs: int, terms: int, features: int):
        self.folder = folder
        self.partial = folder.with_name(f".{folder.name}.partial")
        if self.partial.exists():
            shutil.rmtree(self.partial)  # left by an interrupted evaluation: never counts
        self.partial.mkdir(parents=True)
        self.shapes = {
            "terms": (steps, envs, terms),
            "psi": (steps, envs),
            "features": (steps, envs, features),
            "episode": (steps, envs),
            "terminated": (steps, envs),
            "truncated": (steps, envs),
        }
        self.arrays = {
            name: np.lib.format.open_memmap(
                self.partial / f"{name}.npy", mode="w+", dtype=ARRAYS[name], shape=shape
            )
            for name, shape in self.shapes.items()
        }

    def write(self, t0: int, chunk: dict[str, np.ndarray]) -> None:
        """Store steps ``t0 .. t0 + len`` of every array."""
        for name, values in chunk.items():
            self.arrays[name][t0 : t0 + len(values)] = values

    def finish(self, meta: dict) -> Path:
        for arr in self.arrays.values():
            arr.flush()
        self.arrays.clear()
        meta = {**meta, "shapes": {k: list(v) for k, v in self.shapes.items()}}
        tmp = self.partial / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2, default=str))
        os.replace(tmp, self.partial / "meta.json")
        if self.folder.exists():  # stale (another key): replaced only now that the new one is whole
            shutil.rmtree(self.folder)
        os.replace(self.partial, self.folder)
        return self.folder

    def abort(self) -> None:
        self.arrays.clear()
        shutil.rmtree(self.partial, ignore_errors=True)


@dataclass(frozen=True)
class StoredSamples:
    """The complete sample sets found for one scenario: what the selection reads."""

    scenario: str
    checkpoints: tuple[str, ...]
    folders: dict[str, tuple[Path, ...]]
    """Per checkpoint, its seed folders (sorted by seed)."""
    term_names: tuple[str, ...]
    feature_names: tuple[str, ...]


def find_samples(run_dir: str | Path, scenarios: Iterable[str] | None = None) -> list[StoredSamples]:
    """Every scenario's complete sample folders in a run (partial ones are ignored)."""
    root = samples_root(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{run_dir}: no samples under {root.relative_to(Path(run_dir))}; run `postconv evaluate {run_dir}` first"
        )
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if scenarios is None else list(scenarios)
    found = []
    for scenario in names:
        folders: dict[str, list[Path]] = {}
        metas = {}
        for seed_dir in sorted((root / scenario).glob("*/seed_*")):
            meta = read_meta(seed_dir)
            if meta is None:
                continue
            folders.setdefault(seed_dir.parent.name, []).append(seed_dir)
            metas[seed_dir.parent.name] = meta
        if not folders:
            raise FileNotFoundError(
                f"{root / scenario}: no complete sample folders for scenario {scenario!r}"
            )
        any_meta = next(iter(metas.values()))
        order = sorted(folders, key=lambda c: (metas[c]["checkpoint"]["iteration"], c))
        found.append(
            StoredSamples(
                scenario=scenario,
                checkpoints=tuple(order),
                folders={
                    c: tuple(sorted(folders[c], key=lambda p: int(p.name.split("_")[1]))) for c in order
                },
                term_names=tuple(any_meta["reward_terms"]),
                feature_names=tuple(any_meta["feature_names"]),
            )
        )
    return found


def psi_of(folder: Path, term_weights: dict[str, float] | None, term_names: tuple[str, ...]) -> np.ndarray:
    """(T, m) performance of a sample folder: the task reward, or a weighted sum of terms."""
    if term_weights is None:
        return np.load(folder / "psi.npy")
    unknown = sorted(set(term_weights) - set(term_names))
    if unknown:
        raise ValueError(f"unknown reward terms {unknown} in psi; the run's terms are {list(term_names)}")
    w = np.array([term_weights.get(n, 0.0) for n in term_names], dtype=np.float32)
    return np.load(folder / "terms.npy", mmap_mode="r") @ w


def to_sample_set(
    stored: list[StoredSamples],
    checkpoints: Iterable[str] | None = None,
    term_weights: dict[str, float] | None = None,
    sense: str = "reward",
) -> SampleSet:
    """One sample set over the given scenarios (pooled with equal weight per sample).

    Bootstrap groups are envs: env j of seed s in a scenario is one trajectory of the same
    world (initial states, commands, pushes) for every checkpoint, thanks to the common
    random numbers, so whole envs are resampled, paired across checkpoints. Checkpoints
    missing a scenario or seed are left out of the set.
    """
    names = [c for c in stored[0].checkpoints if all(c in s.folders for s in stored)]
    if checkpoints is not None:
        wanted = set(checkpoints)
        names = [c for c in names if c in wanted]
    if not names:
        raise ValueError(
            "no checkpoint has complete samples in every scenario; run `postconv evaluate` first"
        )
    rows, groups = [], None
    for name in names:
        parts, group_parts, next_group = [], [], 0
        for s in stored:
            for folder in s.folders[name]:
                psi = psi_of(folder, term_weights, s.term_names)
                steps, envs = psi.shape
                parts.append(np.asarray(psi, dtype=np.float32).reshape(-1))
                group_parts.append(np.broadcast_to(next_group + np.arange(envs), (steps, envs)).reshape(-1))
                next_group += envs
        rows.append(np.concatenate(parts))
        if groups is None:
            groups = np.concatenate(group_parts)
        elif rows[-1].size != groups.size:
            raise ValueError(
                f"{name} has {rows[-1].size} samples, {names[0]} {groups.size}: the evaluations differ; "
                "re-run `postconv evaluate` with one configuration"
            )
    return SampleSet(psi=np.stack(rows), names=tuple(names), groups=groups, sense=sense)
