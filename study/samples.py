"""The selection's samples of one run, from Isaac Lab (the stage) or from the nominal C MuJoCo twin.

Both sources give the same :class:`SelectionSamples`: per candidate, scenario, step and env
slot, the task's weighted reward terms (times the step), the state features the stage
records, and whether the step ended in a fall. The study ranks from either alike, so the
difference between the two is the physics engine's effect on the ranking.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from postconv.evaluation.policy import load_actor
from postconv.storage.sample_store import STAGE_DIR, find_samples, samples_root, settled
from postconv.tasks.scenarios import parse_scenario


@dataclass(frozen=True)
class SelectionSamples:
    """Samples of C candidates in S scenarios, T recorded steps, m env slots each."""

    names: tuple[str, ...]
    """Candidates (``model_<iter>``), by iteration."""
    iterations: np.ndarray
    """(C,) training iteration of each candidate."""
    scenarios: tuple[str, ...]
    terms: np.ndarray
    """(C, S, T, m, R) weighted reward terms times the step: their sum over R is the reward."""
    term_names: tuple[str, ...]
    features: np.ndarray
    """(C, S, T, m, F) state features (:data:`postconv.tasks.features.FEATURES` components)."""
    feature_names: tuple[str, ...]
    terminated: np.ndarray
    """(C, S, T, m) the step ended in a fall."""
    settled: np.ndarray | None = None
    """(C, S, T, m) the steps the stage counts (:func:`postconv.storage.sample_store.settled`: at
    least the burn-in after the env's start or respawn, and every fall); None: not known."""

    @property
    def reward(self) -> np.ndarray:
        """(C, S, T, m) the task reward of every step."""
        return self.terms.sum(axis=-1)

    def feature(self, name: str) -> np.ndarray:
        """(C, S, T, m) one feature column, e.g. ``projected_gravity.z``."""
        return self.features[..., self.feature_names.index(name)]

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            names=np.array(self.names),
            iterations=self.iterations,
            scenarios=np.array(self.scenarios),
            terms=self.terms,
            term_names=np.array(self.term_names),
            features=self.features,
            feature_names=np.array(self.feature_names),
            terminated=self.terminated,
            **({} if self.settled is None else {"settled": self.settled}),
        )
        tmp.replace(path)
        return path

    @staticmethod
    def load(path: Path) -> SelectionSamples:
        with np.load(path) as f:
            return SelectionSamples(
                names=tuple(str(x) for x in f["names"]),
                iterations=f["iterations"],
                scenarios=tuple(str(x) for x in f["scenarios"]),
                terms=f["terms"],
                term_names=tuple(str(x) for x in f["term_names"]),
                features=f["features"],
                feature_names=tuple(str(x) for x in f["feature_names"]),
                terminated=f["terminated"],
                settled=f["settled"] if "settled" in f.files else None,
            )


def from_stage(run_dir: Path) -> SelectionSamples:
    """The samples the post-convergence stage stored for the run's candidates (its last evaluation)."""
    evaluation = json.loads((run_dir / STAGE_DIR / "evaluation.json").read_text())
    index = find_samples(run_dir, {(sc, c, seed): key for sc, c, seed, key in evaluation["sample_sets"]})
    seeds = sorted({seed for _, _, seed, _ in evaluation["sample_sets"]})
    if len(seeds) != 1:
        raise ValueError(f"{run_dir}: the study reads one seed of the stage's samples; found seeds {seeds}")
    seed = seeds[0]
    names = sorted(
        (
            c
            for c in evaluation["candidates"]
            if all((sc, c, seed) in index.folders for sc in evaluation["scenarios"])
        ),
        key=lambda c: index.iterations[c],
    )
    scenarios = tuple(evaluation["scenarios"])
    root = samples_root(run_dir)

    def stacked(read) -> np.ndarray:
        return np.stack([np.stack([read(root / sc / c / f"seed_{seed}") for sc in scenarios]) for c in names])

    def array(name: str):
        return lambda folder: np.load(folder / f"{name}.npy")

    return SelectionSamples(
        names=tuple(names),
        iterations=np.array([index.iterations[c] for c in names]),
        scenarios=scenarios,
        terms=stacked(array("terms")),
        term_names=index.term_names,
        features=stacked(array("features")),
        feature_names=index.feature_names,
        terminated=stacked(array("terminated")),
        settled=stacked(settled),
    )


def from_twin(
    run_dir: Path,
    names: tuple[str, ...],
    scenarios: tuple[str, ...],
    envs: int,
    burn_in: int,
    steps: int,
    seed: int = 0,
) -> SelectionSamples:
    """The same candidates, scenarios and sizes sampled in the nominal C MuJoCo twin of the task.

    Each candidate runs its own ``envs`` worlds from the same seed: env j meets the same
    sequence of resets and pushes for every candidate (one random stream per env and kind),
    no observation noise, the scenario's pushes at full strength.
    """
    from postconv.cputrain.env import FEATURE_NAMES, StandEnv, StandEnvConfig
    from postconv.sim2sim.contract import ACT_DIM, OBS_DIM
    from postconv.sim2sim.robot import build_g1
    from postconv.storage.checkpoints import open_run
    from postconv.tasks import stand

    dynamic = [s for s in scenarios if parse_scenario(s).dynamics is not None]
    if dynamic:
        raise ValueError(f"the twin has no per-env dynamics draws; leave out {dynamic}")
    run = open_run(run_dir)
    by_name = {c.name: c for c in run.checkpoints}
    clip = run.agent_cfg.get("clip_actions")
    robot = build_g1()
    runs = []  # per candidate, per scenario: (terms, features, terminated) over the recorded steps
    for name in names:
        actor = load_actor(by_name[name].path, run.agent_cfg, OBS_DIM, ACT_DIM)
        runs.append([])
        for scenario in scenarios:
            config = StandEnvConfig(
                num_envs=envs, seed=seed, threads=1, observation_noise=False, curriculum=None,
                push=parse_scenario(scenario),
            )  # fmt: skip
            runs[-1].append(_rollout(StandEnv(config, robot), actor, clip, burn_in, steps))

    def stacked(i: int) -> np.ndarray:
        return np.stack([np.stack([r[i] for r in per_scenario]) for per_scenario in runs])

    return SelectionSamples(
        names=names,
        iterations=np.array([by_name[n].iteration for n in names]),
        scenarios=tuple(parse_scenario(s).name for s in scenarios),
        terms=stacked(0),
        term_names=tuple(stand.REWARD_WEIGHTS),
        features=stacked(1),
        feature_names=FEATURE_NAMES,
        terminated=stacked(2),
        settled=stacked(3),
    )


def _rollout(env, actor, clip: float | None, burn_in: int, steps: int) -> tuple[np.ndarray, ...]:
    """(T, m, R) weighted terms, (T, m, F) features, (T, m) falls and (T, m) settled steps of
    ``steps`` steps after ``burn_in`` (settled as the stage counts them: the env's age before
    the step, 0 on the first step after a respawn, at least ``burn_in``, or a fall)."""
    terms, features, falls, kept = [], [], [], []
    obs = env.get_observations()["policy"]
    try:
        for t in range(burn_in + steps):
            with torch.inference_mode():
                action = actor(obs)
            if clip is not None:
                action = action.clamp(-clip, clip)
            age = env.ep_len.copy()
            obs = env.step(action)[0]["policy"]
            if t >= burn_in:
                terms.append(env.step_terms.astype(np.float32))
                features.append(env.step_features.astype(np.float32))
                falls.append(env.terminated.copy())
                kept.append((age >= burn_in) | env.terminated)
    finally:
        env.close()
    return np.stack(terms), np.stack(features), np.stack(falls), np.stack(kept)
