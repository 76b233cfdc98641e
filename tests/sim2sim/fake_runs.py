"""A run folder for sim2sim made without Isaac Lab: rsl_rl 5 checkpoints of small random actors
and a selection from synthetic samples (the replay, the search and their bookkeeping are tested,
not the policies)."""

import json

import numpy as np
import torch

from postconv.ranking.config import SelectionConfig
from postconv.ranking.select import select
from postconv.storage.samples_file import SampleSet

NAMES = ["model_10", "model_20", "model_30", "model_40"]


def _checkpoint(path, seed: int, scale: float = 1.0) -> None:
    """A small random actor; ``scale`` shrinks its output (0: it holds the default pose)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(32, 99), (29, 32)]
    state = {}
    for i, (out, inp) in zip((0, 2), shapes, strict=True):
        state[f"mlp.{i}.weight"] = torch.randn(out, inp, generator=gen) * (0.1 * scale if i else 0.3)
        state[f"mlp.{i}.bias"] = torch.zeros(out)
    torch.save({"actor_state_dict": state, "iter": seed}, path)


def make_run(tmp_path, scales: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0), task: str | None = None):
    """A run folder of NAMES, checkpoint i's actor scaled by ``scales[i]``; ``task``: the id its
    run.json names (none: a velocity task's worlds, with their mixed commands)."""
    run = tmp_path / "logs" / "rsl_rl" / "g1_flat" / "2026-01-01_00-00-00"
    (run / "params").mkdir(parents=True)
    if task is not None:
        (run / "run.json").write_text(json.dumps({"task": task}))
    (run / "params" / "agent.yaml").write_text("actor:\n  activation: elu\n  obs_normalization: false\n")
    for i, (name, scale) in enumerate(zip(NAMES, scales, strict=True)):
        _checkpoint(run / f"{name}.pt", i, scale)
    write_selection(run, np.random.default_rng(0).normal(size=(4, 400)) + np.arange(4)[:, None] * 0.1)
    return run


def write_selection(run, psi: np.ndarray) -> None:
    """The selection of ``psi`` ((4, n) samples of NAMES, 20 to a group) as ``postconv run`` writes it."""
    result = select(
        SampleSet(psi=psi, names=tuple(NAMES), groups=np.arange(psi.shape[1]) // 20),
        SelectionConfig(n_boot=0, pick="worst-case"),  # the chosen one is the best worst case, not the last
    )
    (run / "postconv").mkdir(exist_ok=True)
    (run / "postconv" / "selection.json").write_text(result.to_json())
