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

import errno
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from postconv.storage.sample import UNITS, per_unit, settled_steps, term_vector
from postconv.storage.samples_file import SampleSet, atomic_write

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


def partial_dir(folder: Path) -> Path:
    """A hidden folder beside ``folder``, unique to one writer: two writers of one sample set
    (a Ray job retried while its first worker still runs) never share or delete each other's."""
    return folder.with_name(f".{folder.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")


def _aside_dir(folder: Path) -> Path:
    """Where :func:`_publish` moves a folder it replaces; named apart from partial folders so
    that no clean-up of partials ever deletes it."""
    return folder.with_name(f".{folder.name}.old-{os.getpid()}-{secrets.token_hex(4)}")


def remove_partials(root: Path) -> int:
    """Delete the partial folders under a samples root (left by killed writers); call it only
    while holding the run's lock, when no writer of this run is alive. A folder a killed
    writer had moved aside goes back where nothing replaced it. Returns how many."""
    stale = [p for p in root.glob("*/*/.seed_*.partial*") if p.is_dir()]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    for aside in root.glob("*/*/.seed_*.old-*"):
        folder = aside.with_name(aside.name[1:].split(".old-")[0])
        try:
            if not folder.exists():
                os.replace(aside, folder)
                continue
        except OSError:  # a live writer (a Ray job's first attempt) published in between
            pass
        shutil.rmtree(aside, ignore_errors=True)
    return len(stale)


def _publish(partial: Path, folder: Path) -> Path:
    """Rename a finished partial folder into place. A folder already there (of another key, or
    another writer's copy of the same set) is first renamed aside, and deleted only once the
    new one is in place; if anything (Ctrl-C included) stops the swap before that, it is put
    back (by :func:`remove_partials` if the process dies first). A rename that loses a race
    to another writer is retried."""
    for _ in range(3):
        aside = None
        try:
            if folder.exists():
                aside = _aside_dir(folder)
                try:
                    os.replace(folder, aside)
                except FileNotFoundError:  # another writer moved it first
                    aside = None
            os.replace(partial, folder)
            return folder
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            # another writer published in between: move theirs aside and try again
        finally:
            if aside is not None:
                if folder.exists():  # ours (or another writer's) is in place
                    shutil.rmtree(aside, ignore_errors=True)
                else:
                    os.replace(aside, folder)
    raise OSError(f"{folder}: could not replace it with {partial.name}; another writer keeps publishing it")


def discard_partials(folder: Path) -> None:
    """Delete this process's partial folders of ``folder`` (a writer interrupted anywhere,
    even before its caller held it); another process's are left alone."""
    for p in folder.parent.glob(f".{folder.name}.partial-{os.getpid()}-*"):
        shutil.rmtree(p, ignore_errors=True)


class SampleWriter:
    """Streams one checkpoint x scenario x seed's samples into memory-mapped files.

    Shapes are fixed up front (T recorded steps, m envs, R terms, F features); chunks of
    consecutive steps are written with :meth:`write`, and :meth:`finish` publishes the
    folder atomically.
    """

    def __init__(self, folder: Path, steps: int, envs: int, terms: int, features: int):
        self.folder = folder
        self.partial = partial_dir(folder)
        self.shapes = {
            "terms": (steps, envs, terms),
            "psi": (steps, envs),
            "features": (steps, envs, features),
            "episode": (steps, envs),
            "terminated": (steps, envs),
            "truncated": (steps, envs),
        }
        self.arrays: dict[str, np.memmap] = {}
        # Ctrl-C may land anywhere in here (creating six files takes a while); nothing half made
        # may stay behind, as the caller never got a writer to abort
        try:
            self.partial.mkdir(parents=True)
            for name, shape in self.shapes.items():
                self.arrays[name] = np.lib.format.open_memmap(
                    self.partial / f"{name}.npy", mode="w+", dtype=ARRAYS[name], shape=shape
                )
        except BaseException:
            self.abort()
            raise

    def write(self, t0: int, chunk: dict[str, np.ndarray]) -> None:
        """Store steps ``t0 .. t0 + len`` of every array."""
        for name, values in chunk.items():
            self.arrays[name][t0 : t0 + len(values)] = values

    def finish(self, meta: dict) -> Path:
        """Write ``meta.json`` and publish the folder; interrupted, the partial folder goes."""
        try:
            for arr in self.arrays.values():
                arr.flush()
            self.arrays.clear()
            meta = {**meta, "shapes": {k: list(v) for k, v in self.shapes.items()}}
            atomic_write_text(self.partial / "meta.json", json.dumps(meta, indent=2, default=str))
            return _publish(self.partial, self.folder)
        except BaseException:
            self.abort()  # after the rename there is no partial folder left to remove
            raise

    def abort(self) -> None:
        """Remove the partial folder (safe to call more than once, and after :meth:`finish`)."""
        self.arrays.clear()
        shutil.rmtree(self.partial, ignore_errors=True)


def folder_files(folder: Path) -> dict[str, bytes]:
    """A complete sample folder's files (to move it to another machine)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def publish_folder(folder: Path, files: dict[str, bytes], checkpoint_path: str | None = None) -> Path:
    """Write a sample folder from :func:`folder_files` as :class:`SampleWriter` does: under a
    temporary name, ``meta.json`` last, renamed into place. ``checkpoint_path`` replaces the
    path in ``meta.json`` (where the checkpoint is here, not where the worker read it)."""
    partial = partial_dir(folder)
    meta = json.loads(files["meta.json"])
    if checkpoint_path is not None:
        meta["checkpoint"]["path"] = checkpoint_path
    try:
        partial.mkdir(parents=True)
        for name, data in files.items():
            if name != "meta.json":
                (partial / name).write_bytes(data)
        atomic_write_text(partial / "meta.json", json.dumps(meta, indent=2, default=str))
        return _publish(partial, folder)
    except BaseException:  # Ctrl-C or a full disk: no partial folder stays behind
        shutil.rmtree(partial, ignore_errors=True)
        raise


_SLOTS_PER_SEED = 1 << 24  # group id = seed rank x this + env slot

Unit = tuple[str, str, int]
"""(scenario, checkpoint, seed): one sample folder."""


@dataclass(frozen=True)
class SampleIndex:
    """The complete, current sample folders of a run: what the selection reads."""

    folders: dict[Unit, Path]
    iterations: dict[str, int]
    """Checkpoint -> training iteration (the order of results)."""
    term_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    steps: dict[Unit, tuple[int, int]] = field(default_factory=dict)
    """Unit -> (recorded steps, envs) of its folder's psi."""

    @property
    def scenarios(self) -> list[str]:
        return sorted({u[0] for u in self.folders})


def find_samples(run_dir: str | Path, expected: dict[Unit, str] | None = None) -> SampleIndex:
    """The run's complete sample folders: those ``expected`` (unit -> key) if given, else all.

    ``expected`` comes from the last evaluation (``evaluation.json``), so folders of other
    settings (another seed range, step count or env size) are never mixed in; partial
    folders never count.
    """
    root = samples_root(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{run_dir}: no samples under {root.relative_to(Path(run_dir))}; run `postconv evaluate {run_dir}` first"
        )
    if expected is None:
        candidates = {}
        for folder in root.glob("*/*/seed_*"):
            meta = read_meta(folder)
            if meta is not None:
                candidates[(folder.parts[-3], folder.parts[-2], int(folder.name[5:]))] = meta.get("key")
    else:
        candidates = expected
    folders, metas, steps = {}, {}, {}
    for unit, key in candidates.items():
        folder = sample_dir(root, *unit)
        if is_complete(folder, key):
            folders[unit] = folder
            metas[unit[1]] = read_meta(folder)
            steps[unit] = tuple(metas[unit[1]]["shapes"]["psi"])
    if not folders:
        raise FileNotFoundError(
            f"{root}: no complete sample folders; run `postconv evaluate {run_dir}` first"
        )
    any_meta = next(iter(metas.values()))
    return SampleIndex(
        folders=folders,
        iterations={c: int(m["checkpoint"]["iteration"]) for c, m in metas.items()},
        term_names=tuple(any_meta["reward_terms"]),
        feature_names=tuple(any_meta["feature_names"]),
        steps=steps,
    )


def psi_of(folder: Path, term_weights: dict[str, float] | None, term_names: tuple[str, ...]) -> np.ndarray:
    """(T, m) performance of a sample folder: the task reward, or a weighted sum of terms."""
    if term_weights is None:
        return np.load(folder / "psi.npy")
    return np.load(folder / "terms.npy", mmap_mode="r") @ term_vector(term_weights, term_names)


COLUMN_STEPS = 1 << 21
"""Env-steps of one checkpoint the report's charts read at most (:func:`checkpoint_columns`)."""


def settled(folder: Path) -> np.ndarray:
    """(T, m) the steps the selection counts: those at least ``burn_in_steps`` after the env's
    last reset (the respawn after a fall starts with root velocities up to 0.5 m/s, as the
    rollout's start does), and every step that ended in a fall, however soon after a reset
    (a fall is always counted, once)."""
    meta = read_meta(folder) or {}
    burn_in = int(meta.get("spec", {}).get("burn_in_steps", 0))
    age = meta.get("age_at_start", burn_in)  # folders before it was recorded: the burn-in
    return settled_steps(np.load(folder / "episode.npy"), np.load(folder / "terminated.npy"), age, burn_in)


def complete_checkpoints(
    index: SampleIndex, scenarios: Iterable[str] | None = None, checkpoints: Iterable[str] | None = None
) -> tuple[list[str], dict[str, str], list[tuple[str, int]]]:
    """The checkpoints with a folder for every (scenario, seed) any of them has, in training
    order; those left out with the reason; and those (scenario, seed) units, sorted."""
    scenarios = set(index.scenarios if scenarios is None else scenarios)
    wanted = set(index.iterations if checkpoints is None else checkpoints)
    names = sorted((c for c in index.iterations if c in wanted), key=lambda c: (index.iterations[c], c))
    units = sorted({(sc, seed) for sc, c, seed in index.folders if sc in scenarios and c in wanted})
    if not units:
        raise ValueError(
            f"no samples for scenarios {sorted(scenarios)} of these checkpoints; run `postconv evaluate` (again)"
        )
    kept, left_out = [], {}
    for name in names:
        missing = [u for u in units if (u[0], name, u[1]) not in index.folders]
        if missing:
            left_out[name] = "no complete samples for " + ", ".join(
                f"{sc} seed {seed}" for sc, seed in missing[:3]
            )
        else:
            kept.append(name)
    if not kept:
        raise ValueError(
            f"no checkpoint has complete samples in every scenario and seed ({left_out}); run `postconv evaluate`"
        )
    return kept, left_out, units


def to_sample_set(
    index: SampleIndex,
    scenarios: Iterable[str] | None = None,
    checkpoints: Iterable[str] | None = None,
    term_weights: dict[str, float] | None = None,
    sense: str = "reward",
    unit: str = "step",
) -> tuple[SampleSet, dict[str, str]]:
    """One sample set over the given scenarios (pooled, equal weight per settled sample; see
    :func:`settled`), and the checkpoints left out with the reason.

    A checkpoint is kept only if it has a folder for every (scenario, seed) any kept
    checkpoint has, so every row holds the same worlds in the same order. Bootstrap groups
    are (seed, env slot): under common random numbers slot j of seed s starts from the same
    states and commands for every checkpoint and in every scenario, so its trajectories are
    resampled together, paired across checkpoints. ``unit``: see :func:`per_unit`.
    """
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; choose one of {', '.join(UNITS)}")
    kept, left_out, units = complete_checkpoints(index, scenarios, checkpoints)
    seed_rank = {seed: i for i, seed in enumerate(sorted({seed for _, seed in units}))}
    rows, group_parts, shapes, masks = [], [], {}, []
    for name in kept:
        parts, keeps = [], []
        for scenario, seed in units:
            folder = index.folders[(scenario, name, seed)]
            psi = psi_of(folder, term_weights, index.term_names)
            keep = settled(folder)
            if shapes.setdefault((scenario, seed), psi.shape) != psi.shape:
                raise ValueError(
                    f"{name} has {psi.shape} samples for {scenario} seed {seed}, {kept[0]} "
                    f"{shapes[(scenario, seed)]}: the evaluations differ; re-run `postconv evaluate` with one configuration"
                )
            # per step the unsettled steps get zero weight (every row keeps the same columns)
            parts.append(per_unit(np.asarray(psi, dtype=np.float32), unit, None if unit == "step" else keep))
            keeps.append(keep.reshape(-1))
            if name == kept[0]:
                slots = seed_rank[seed] * _SLOTS_PER_SEED + np.arange(psi.shape[1])
                group_parts.append(
                    per_unit(np.broadcast_to(slots, psi.shape), "step") if unit == "step" else slots
                )
        rows.append(np.concatenate(parts))
        masks.append(np.concatenate(keeps))
    weights = None
    if unit == "step" and not all(m.all() for m in masks):
        weights = np.stack(masks).astype(np.float32)
    samples = SampleSet(
        psi=np.stack(rows),
        names=tuple(kept),
        groups=np.concatenate(group_parts),
        weights=weights,
        sense=sense,
    )
    return samples, left_out


def fall_counts(index: SampleIndex, names: Iterable[str], scenarios: Iterable[str]) -> np.ndarray:
    """(C,) falls per checkpoint: the recorded steps that ended an episode by a termination
    (``terminated.npy``; time-outs are truncations), over its folders of ``scenarios``. With
    common random numbers every checkpoint is recorded alike, so the counts compare."""
    wanted = set(scenarios)
    counts = dict.fromkeys(names, 0)
    for (scenario, checkpoint, _), folder in index.folders.items():
        if checkpoint in counts and scenario in wanted:
            counts[checkpoint] += int(np.load(folder / "terminated.npy").sum())
    return np.array(list(counts.values()), dtype=np.int64)


def checkpoint_columns(
    index: SampleIndex,
    checkpoint: str,
    scenarios: Iterable[str],
    term_weights: dict[str, float] | None = None,
    unit: str = "step",
    max_steps: int = COLUMN_STEPS,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """One checkpoint's pooled samples: psi (n,), reward terms and features (n, R + F), column
    names; per ``unit`` (:func:`per_unit`) as the selection saw them. Per step, when the
    folders hold more than ``max_steps`` env-steps, every s-th recorded step of each folder
    (the smallest s that fits): a chart's view of millions of steps, in bounded memory."""
    psi, columns = [], []
    wanted = set(scenarios)
    folders = [(u, f) for u, f in sorted(index.folders.items()) if u[1] == checkpoint and u[0] in wanted]
    total = sum(int(np.prod(index.steps.get(u, (0, 0)))) for u, _ in folders)
    stride = max(1, -(-total // max_steps)) if unit == "step" else 1
    for _, folder in folders:
        keep = settled(folder)[::stride]
        terms = np.asarray(np.load(folder / "terms.npy", mmap_mode="r")[::stride])
        features = np.load(folder / "features.npy", mmap_mode="r")[::stride]
        if term_weights is None:
            rows = np.load(folder / "psi.npy", mmap_mode="r")[::stride]
        else:
            rows = terms @ term_vector(term_weights, index.term_names)
        psi.append(per_unit(np.asarray(rows, dtype=np.float32), unit, keep))
        columns.append(
            np.concatenate(
                [per_unit(np.asarray(terms), unit, keep), per_unit(np.asarray(features), unit, keep)], 1
            )
        )
    names = tuple(f"reward/{t}" for t in index.term_names) + tuple(f"state/{f}" for f in index.feature_names)
    return np.concatenate(psi), np.concatenate(columns), names
