"""Train ``PostConv-Stand-G1`` on a CPU: rsl_rl PPO on the C MuJoCo twin, into an Isaac Lab run folder.

The run folder is what ``isaaclab train --task PostConv-Stand-G1`` would leave, so every
``postconv`` command takes it unchanged::

    logs/rsl_rl/g1_stand/<timestamp>/
        model_<iter>.pt                    rsl_rl checkpoints, every save_interval (10) iterations
        params/agent.yaml, params/env.yaml the task's runner and env configs (Isaac Lab's dump)
        run.json                           Isaac Lab's run manifest naming the task
        events.out.tfevents.*              the TensorBoard curve (Train/mean_reward, episode terms)
        twin.json                          how the twin ran (envs, seed, threads, curriculum)

Interrupted, a run continues from its last checkpoint with ``resume=True`` (``--resume``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from postconv.cputrain.env import StandEnv, StandEnvConfig
from postconv.tasks import STAND_TASK

TWIN_FILE = "twin.json"


@dataclass(frozen=True)
class TrainConfig:
    """A CPU training run of the stand task."""

    iterations: int = 1000
    """PPO iterations (24 steps of every env each), numbered from 0 as rsl_rl does: the
    last checkpoint is ``model_<iterations - 1>.pt``."""
    env: StandEnvConfig = field(default_factory=StandEnvConfig)
    """The twin: envs, seed, threads, curriculum."""
    log_root: Path = Path("logs/rsl_rl")
    """Experiments folder; the run goes to ``<log_root>/g1_stand/<timestamp>``."""
    run_dir: Path | None = None
    """Exact run folder instead (with ``resume``: the run to continue)."""
    resume: bool = False
    """Continue the run in ``run_dir`` from its last checkpoint up to ``iterations``."""

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1; got {self.iterations}")
        if self.resume and self.run_dir is None:
            raise ValueError("resume needs the run folder to continue: pass it as run_dir (--run-dir)")


def agent_config(seed: int, iterations: int) -> dict:
    """The task's registered runner config (``G1StandPPORunnerCfg``) as Isaac Lab hands it to rsl_rl."""
    from isaaclab_rl.rsl_rl.utils import check_rsl_rl_version, handle_deprecated_rsl_rl_cfg, to_dict

    from postconv.tasks.agents import G1StandPPORunnerCfg

    agent = G1StandPPORunnerCfg()
    agent.seed = seed
    agent.max_iterations = iterations
    agent.device = "cpu"
    # the stage runs on request after a CPU training (--stage), not from the log writer: rsl_rl's
    # own TensorBoard writer, set past the runner config's translation of Isaac Lab's --logger
    # flag (which keeps postconv's writer and its stage at exit)
    object.__setattr__(agent, "logger", "tensorboard")
    return to_dict(handle_deprecated_rsl_rl_cfg(agent, check_rsl_rl_version()))


def train(config: TrainConfig) -> Path:
    """Train the stand task and return the run folder."""
    from rsl_rl.runners import OnPolicyRunner

    run_dir = run_folder(config)
    agent = agent_config(config.env.seed, config.iterations)
    if not config.resume:
        _write_params(run_dir, agent, config)
    env_config, last = config.env, None
    if config.resume:
        _extend(run_dir, config.iterations)
        last = _loadable_checkpoint(run_dir)
        start = last[1] + 1  # model_<k> holds iterations 0..k
        # go on where the curriculum was, with streams of draws the start did not use
        env_config = replace(config.env, stream=start, push_scale=_push_scale_at(run_dir, start))
    torch.manual_seed(
        int(
            np.random.SeedSequence([config.env.seed, 0 if last is None else last[1] + 1]).generate_state(1)[0]
        )
    )
    env = StandEnv(env_config)
    try:
        runner = OnPolicyRunner(env, agent, log_dir=str(run_dir), device="cpu")
        if last is not None:
            runner.load(str(last[0]))
            runner.current_learning_iteration = last[1] + 1  # rsl_rl's load would redo iteration k
        todo = config.iterations - runner.current_learning_iteration
        if todo <= 0:
            print(
                f"{run_dir} has trained {runner.current_learning_iteration} of {config.iterations} iterations: "
                "nothing to train (give more --iterations to go on)"
            )
        if todo > 0:
            t0 = time.perf_counter()
            runner.learn(todo, init_at_random_ep_len=True)
            seconds = time.perf_counter() - t0
            steps = todo * agent["num_steps_per_env"] * config.env.num_envs
            print(
                f"trained {todo} iterations in {seconds:.0f} s ({steps / seconds:,.0f} env-steps/s with learning): {run_dir}"
            )
    finally:
        env.close()
    return run_dir


def _extend(run_dir: Path, iterations: int) -> None:
    """Record a resume's new length in ``twin.json``, so that the next resume goes on to it."""
    path = run_dir / TWIN_FILE
    twin = json.loads(path.read_text())
    if twin.get("iterations") != iterations:
        twin.setdefault("started_iterations", twin.get("iterations"))
        twin["iterations"] = iterations
        path.write_text(json.dumps(twin, indent=2, default=str) + "\n")


def _loadable_checkpoint(run_dir: Path) -> tuple[Path, int]:
    """The newest checkpoint that loads (a save cut short by the interruption is passed over)."""
    models = sorted(run_dir.glob("model_*.pt"), key=lambda p: int(p.stem.split("_")[1]), reverse=True)
    for path in models:
        try:
            saved = torch.load(path, weights_only=False, map_location="cpu")
            return path, int(saved["iter"])
        except Exception as err:  # a truncated file fails in pickle, zip or torch: any of them
            print(f"{path.name} does not load ({type(err).__name__}: {err}); resuming from the one before")
    raise FileNotFoundError(
        f"{run_dir}: no loadable model_<iter>.pt to resume from; start it without --resume"
    )


def _push_scale_at(run_dir: Path, iteration: int) -> float | None:
    """The curriculum's push scale at the start of ``iteration``: logged with it (the curriculum
    moves at the end of an iteration's steps, after its log), else the latest before; None if
    the run logged none."""
    from postconv.storage.checkpoints import open_run, training_curve

    curve = training_curve(open_run(run_dir), tag="Curriculum/push_scale")
    if curve is None:
        return None
    its, values = curve
    before = its <= iteration
    return float(values[before][-1]) if before.any() else None


def is_trained(run_dir: Path, iterations: int) -> bool:
    """Whether ``run_dir`` holds the last checkpoint of a training of ``iterations`` iterations, whole."""
    last = run_dir / f"model_{iterations - 1}.pt"
    try:
        return (
            last.is_file()
            and torch.load(last, weights_only=False, map_location="cpu")["iter"] == iterations - 1
        )
    except Exception:  # a save cut short: not trained to the end
        return False


TRAIN_DEFAULTS = {"iterations": 1000, "num_envs": 256, "seed": 0, "curriculum": True}
"""What a new training runs with unless told otherwise."""


def started_with(run_dir: Path) -> dict:
    """What a run was started with (its ``twin.json``): iterations, num_envs, seed, curriculum."""
    path = run_dir / TWIN_FILE
    try:
        twin = json.loads(path.read_text())
        return {"iterations": int(twin["iterations"]), "num_envs": int(twin["num_envs"]),
                "seed": int(twin["seed"]), "curriculum": twin.get("curriculum") is not None}  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise FileNotFoundError(
            f"{path}: cannot read how this run was started ({type(err).__name__}: {err}); is {run_dir} a run "
            "of `postconv train-mujoco`?"
        ) from err


def training_settings(given: dict, run_dir: Path | None, resume: bool) -> dict:
    """The settings a training runs with: those ``given`` (None: not given), else for a resumed
    run what it was started with, else :data:`TRAIN_DEFAULTS`. A resumed run refuses another
    seed, env count or curriculum (its draws would change mid-run); more iterations extend it."""
    base = dict(TRAIN_DEFAULTS)
    if resume:
        if run_dir is None:
            raise ValueError("--resume needs the run folder to continue: pass it as --run-dir")
        base = started_with(run_dir)
        said = {"curriculum": lambda on: "the curriculum" if on else "--no-curriculum"}
        clash = [
            f"{said[key](given[key]) if key in said else f'--{key} {given[key]}'} (started with "
            f"{said[key](base[key]) if key in said else base[key]})"
            for key in ("num_envs", "seed", "curriculum")
            if given.get(key) is not None and given[key] != base[key]
        ]
        if clash:
            raise ValueError(
                f"{run_dir} was started otherwise: {', '.join(clash)}; leave those options out to go on as it started"
            )
    return {key: base[key] if given.get(key) is None else given[key] for key in TRAIN_DEFAULTS}


def run_folder(config: TrainConfig) -> Path:
    """Where the run goes: ``run_dir``, else a new timestamped folder under ``log_root``."""
    if config.run_dir is not None:
        return config.run_dir
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return config.log_root / "g1_stand" / f"{stamp}_mujoco_seed{config.env.seed}"


def _write_params(run_dir: Path, agent: dict, config: TrainConfig) -> None:
    """params/*.yaml as Isaac Lab's train script dumps them, run.json, and how the twin ran."""
    from isaaclab.utils.io import dump_yaml
    from isaaclab_rl.entrypoints.common import write_run_manifest

    from postconv.tasks.velocity import G1StandEnvCfg

    if any(run_dir.glob("model_*.pt")):
        raise FileExistsError(
            f"{run_dir} already holds checkpoints; continue it with --resume or pick a new folder"
        )
    env_cfg = G1StandEnvCfg()
    env_cfg.seed = config.env.seed
    env_cfg.scene.num_envs = config.env.num_envs
    dump_yaml(str(run_dir / "params" / "env.yaml"), env_cfg)
    dump_yaml(str(run_dir / "params" / "agent.yaml"), agent)
    write_run_manifest(str(run_dir), library="rsl_rl", task=STAND_TASK, metadata={"physics": "C MuJoCo twin"})
    twin = {**asdict(config.env), "iterations": config.iterations, "pid": os.getpid()}
    (run_dir / TWIN_FILE).write_text(json.dumps(twin, indent=2, default=str) + "\n")


__all__ = ["TrainConfig", "agent_config", "is_trained", "train"]
