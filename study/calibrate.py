"""Grade the held-out worlds before the study: how often do a few candidates fall in each?

For each kind of shift a few magnitudes are tried on a handful of one run's candidates
(spread over the post-convergence range); the study then uses, per kind, the magnitude
whose fall rate averaged over those candidates is closest to 50%. Only average fall rates
are looked at, never which candidate did better, so the worlds are fixed before any
ranking is judged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

BASE_PUSH = "push=0.5@1-3"
"""Every held-out world keeps pushes (without them a standing policy rarely falls), of the size
the policies met at the end of training (the curriculum sat at 0.25 to 0.45 of the task's
1 m/s) and the stage's first default scenario. Measured first with the task's full 1 m/s:
every candidate fell in about half the episodes or more of every world but low friction,
whatever the shift (calibration_push1.json)."""
GRID: dict[str, tuple[str, ...]] = {
    "reference": (BASE_PUSH,),
    "push": ("push=0.75@1-3", "push=1@1-3", "push=1.25@1-3"),
    "latency": tuple(f"latency={ms}ms,{BASE_PUSH}" for ms in (10, 20, 30)),
    "obs_delay": tuple(f"obs_delay={ms}ms,{BASE_PUSH}" for ms in (20, 40)),
    "strength": tuple(f"strength={s},{BASE_PUSH}" for s in (0.8, 0.7, 0.6)),
    "friction": tuple(f"friction={f},{BASE_PUSH}" for f in (0.5, 0.3, 0.2)),
    "mass": tuple(f"mass={kg},com_x={kg / 150:.2f},{BASE_PUSH}" for kg in (3, 6, 10)),
    "noise": tuple(f"noise={n},{BASE_PUSH}" for n in (2, 4, 6)),
    "joint_loss": tuple(f"joint_friction={v},joint_damping={v},{BASE_PUSH}" for v in (0.5, 1, 2)),
    "combined": tuple(
        f"strength={s},latency={ms}ms,friction={f},mass={kg},{BASE_PUSH}"
        for s, ms, f, kg in ((0.9, 10, 0.6, 2), (0.85, 10, 0.5, 3), (0.8, 20, 0.4, 4))
    ),
}
"""Kind -> magnitudes tried, mild to severe."""
TARGET_FALL_RATE = 0.5
CALIBRATION_SEED = 1
"""Seed of the calibration's episodes: not the study's (0), so it grades on other episodes than it judges on."""


def fall_rates(
    run_dir: Path, worlds: tuple[str, ...], checkpoints: int = 4, episodes: int = 64, seconds: float = 8.0
) -> tuple[list[str], dict[str, list[float]]]:
    """(candidates used, world -> fall rate per candidate) over ``checkpoints`` post-convergence candidates."""
    from postconv.evaluation.policy import load_actor
    from postconv.evaluation.rollout import GroupPolicy
    from postconv.sim2sim.batch import WorldBatch, thread_pool
    from postconv.sim2sim.config import EpisodeSpec
    from postconv.sim2sim.contract import ACT_DIM, OBS_DIM
    from postconv.sim2sim.worlds import Command, parse_worlds, world_model
    from postconv.storage.checkpoints import open_run
    from postconv.study.analysis import after_plateau

    run = open_run(run_dir)
    after = after_plateau(run)
    pick = np.unique(np.linspace(0, len(after) - 1, checkpoints).round().astype(int))
    chosen = [after[i] for i in pick]
    actors = [load_actor(c.path, run.agent_cfg, OBS_DIM, ACT_DIM) for c in chosen]
    spec = EpisodeSpec(episodes, seconds, seed=CALIBRATION_SEED)
    rates = {}
    with thread_pool() as pool:
        for world in parse_worlds(worlds, Command("stand")):
            batch = WorldBatch(world_model(world), world, spec, pool)
            out = batch.run(GroupPolicy(actors, episodes, "cpu"), len(actors))
            rates[world.name] = (
                (1.0 - out.survived.reshape(len(actors), episodes).mean(axis=1)).round(3).tolist()
            )
    return [c.name for c in chosen], rates


def choose(rates: dict[str, list[float]], grid: dict[str, tuple[str, ...]] = GRID) -> dict[str, str]:
    """Per kind, the world whose mean fall rate is closest to :data:`TARGET_FALL_RATE`."""
    return {
        kind: min(options, key=lambda w: abs(float(np.mean(rates[w])) - TARGET_FALL_RATE))
        for kind, options in grid.items()
        if all(w in rates for w in options)
    }


def calibrate(
    run_dir: Path, out: Path, console: Console, checkpoints: int = 4, episodes: int = 64, seconds: float = 8.0
) -> dict[str, str]:
    worlds = tuple(w for options in GRID.values() for w in options)
    sizes = {"checkpoints": checkpoints, "episodes": episodes, "seconds": seconds}
    names, rates = fall_rates(run_dir, worlds, **sizes)
    chosen = choose(rates)
    table = Table(title=f"fall rates of {', '.join(names)} ({run_dir})")
    table.add_column("world")
    for n in names:
        table.add_column(n, justify="right")
    table.add_column("mean", justify="right")
    table.add_column("chosen")
    for w, r in rates.items():
        table.add_row(w, *(f"{x:.2f}" for x in r), f"{np.mean(r):.2f}", "<-" if w in chosen.values() else "")
    console.print(table)
    out.mkdir(parents=True, exist_ok=True)
    record = {"run": str(run_dir), "candidates": names, "fall_rates": rates, "chosen": chosen,
              "episode_seed": CALIBRATION_SEED, **sizes}  # fmt: skip
    (out / "calibration.json").write_text(json.dumps(record, indent=2) + "\n")
    return chosen
