"""The post-convergence stage, run by itself when ``isaaclab train`` ends.

rsl_rl builds its log writer from the runner config's ``logger`` entry (``class_name`` plus
constructor arguments) and calls the writer's ``stop()`` when ``learn()`` finishes. The
G1 runner configs name :class:`PostConvLogWriter`: it logs exactly as TensorBoard (or W&B)
would, and at ``stop()`` arranges for ``postconv run <run folder>`` to start when the
training process exits, in a process of its own, after Isaac Lab has closed the training
env, so the evaluation builds its own simulation.

Turn it off with ``agent.logger.run_stage=false`` in the runner config, or with the
environment variable ``POSTCONV_STAGE=0``; pass stage options in ``POSTCONV_STAGE_ARGS``
(or ``stage_args`` of the logger entry). An interrupted training (Ctrl-C) never calls
``stop()`` and starts nothing.
"""

from __future__ import annotations

import atexit
import os
import shlex
import subprocess
import sys
from pathlib import Path

from rsl_rl.utils.log_writer import LogWriter

from postconv.tasks.logger import ENV_RUN_DIR_FILE, ENV_STAGE_ARGS, ENV_SWITCH


def stage_enabled(run_stage: bool = True) -> bool:
    return run_stage and os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "off", "no")


class PostConvLogWriter(LogWriter):
    """TensorBoard or W&B logging, then the post-convergence stage when training ends.

    Args:
        log_dir: the run folder (given by rsl_rl).
        backend: ``"tensorboard"`` or ``"wandb"`` (rsl_rl's W&B writer; its arguments in ``backend_cfg``).
        run_stage: the switch in the runner config.
        stage_args: extra ``postconv run`` options, e.g. ``["--num_envs", "256"]`` or ``"--num_envs 256"``.
        backend_cfg: constructor arguments of the W&B writer (``project_name``, ...).
    """

    def __init__(
        self,
        log_dir: str,
        backend: str = "tensorboard",
        run_stage: bool = True,
        stage_args: list[str] | str | None = None,
        backend_cfg: dict | None = None,
    ):
        self.log_dir = Path(log_dir)
        self.run_stage = run_stage
        # a string from a Hydra override (agent.logger.stage_args="--num_envs 256") or a list
        self.stage_args = shlex.split(stage_args) if isinstance(stage_args, str) else list(stage_args or [])
        self.device: str | None = None
        self.stage_config = None
        if stage_enabled(self.run_stage):
            # a bad option fails now, before anything is logged; the sizes that depend on the
            # device are checked again in store_config, once the simulation's device is known
            self.stage_config = self._parse_stage_args("cuda:0")
        if backend == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self.inner = SummaryWriter(log_dir=str(log_dir), flush_secs=10)
        elif backend == "wandb":
            from rsl_rl.utils.wandb_log_writer import WandbLogWriter

            # rsl_rl's writer needs a project; Isaac Lab's default one unless the config names another
            cfg = {"project_name": os.environ.get("WANDB_PROJECT", "isaaclab"), **(backend_cfg or {})}
            self.inner = WandbLogWriter(log_dir=str(log_dir), **cfg)
            from postconv.dashboard.log import record_training_run

            record_training_run(self.log_dir)  # the stage logs its selection into this run too
        else:
            raise ValueError(
                f"postconv log writer: backend {backend!r} unknown; use 'tensorboard' or 'wandb'"
            )
        if record := os.environ.get(ENV_RUN_DIR_FILE):
            Path(record).write_text(str(self.log_dir.resolve()))

    def add_scalar(self, tag: str, scalar_value: float, global_step: int) -> None:
        self.inner.add_scalar(tag, scalar_value, global_step)

    def _stage_extra(self) -> list[str]:
        return self.stage_args + shlex.split(os.environ.get(ENV_STAGE_ARGS, ""))

    def _parse_stage_args(self, device: str | None):
        from postconv.cli.options import parse_stage_args

        extra = self._stage_extra()
        # the same order as stage_command: a --device among the user's options wins
        return parse_stage_args(["--device", device, *extra] if device else extra)

    def store_config(self, env_cfg, train_cfg: dict) -> None:
        # the stage evaluates where the simulation ran (the env's sim.device), which may not be
        # where the learner ran (rsl_rl's device)
        self.device = _sim_device(env_cfg) or train_cfg.get("device")
        if self.stage_config is not None:  # rsl_rl stores the config before its first iteration
            self.stage_config = self._parse_stage_args(self.device)
        psi = self.stage_config.psi_terms if self.stage_config else None
        rewards = env_cfg.get("rewards") if isinstance(env_cfg, dict) else getattr(env_cfg, "rewards", None)
        if psi and rewards is not None:
            from postconv.stage.run import check_psi_terms
            from postconv.tasks.velocity import active_reward_terms

            check_psi_terms(psi, active_reward_terms(rewards), "the task")
        if isinstance(self.inner, LogWriter):
            self.inner.store_config(env_cfg, train_cfg)

    def save_model(self, model_path: str, it: int) -> None:
        if isinstance(self.inner, LogWriter):
            self.inner.save_model(model_path, it)

    def save_file(self, path: str) -> None:
        if isinstance(self.inner, LogWriter):
            self.inner.save_file(path)

    def save_video(self, video, it: int) -> None:
        if isinstance(self.inner, LogWriter):
            self.inner.save_video(video, it)

    def stop(self) -> None:
        if isinstance(self.inner, LogWriter):
            self._upload_run_files()
            from postconv.dashboard.log import record_training_run

            record_training_run(self.log_dir)  # again: its last step, which the stage logs after
            self.inner.stop()
        else:
            self.inner.close()
        if stage_enabled(self.run_stage):
            command = stage_command(self.log_dir, self.device, self._stage_extra())
            print(
                f"[postconv] training finished; the post-convergence stage starts at exit: {' '.join(command)}"
            )
            atexit.register(_run_at_exit, command)

    def _upload_run_files(self) -> None:
        """The configs and manifest next to the checkpoints on W&B, so `postconv fetch` rebuilds the run folder."""
        import wandb

        for path in [*sorted((self.log_dir / "params").glob("*.yaml")), self.log_dir / "run.json"]:
            if path.is_file():
                wandb.save(str(path), base_path=str(self.log_dir), policy="now")


def _sim_device(env_cfg) -> str | None:
    sim = env_cfg.get("sim") if isinstance(env_cfg, dict) else getattr(env_cfg, "sim", None)
    device = sim.get("device") if isinstance(sim, dict) else getattr(sim, "device", None)
    return str(device) if device else None


def stage_command(run_dir: Path, device: str | None, extra: list[str]) -> list[str]:
    command = [sys.executable, "-m", "postconv.cli", "run", str(run_dir)]
    if device and "--device" not in extra:
        command += ["--device", device]
    return command + extra


def _run_at_exit(command: list[str]) -> None:
    # the training env is closed by now; the stage builds its own simulation in a new process.
    # This process waits for it: give its cached GPU memory back first (the CUDA context stays)
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    # the training's W&B run id must not become the selection's own run id
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_RUN_ID", "WANDB_RESUME")}
    subprocess.run(command, env={**env, ENV_SWITCH: "0"}, check=False)
