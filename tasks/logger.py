"""The runner config's ``logger`` entry that names postconv's log writer: plain data.

The G1 runner configs (:mod:`postconv.tasks.agents`) log through
``postconv.hook:PostConvLogWriter``, which starts the post-convergence stage when training
ends; this module builds that entry and the environment switches around it, without
importing rsl_rl or the writer.
"""

from __future__ import annotations

import os

ENV_SWITCH = "POSTCONV_STAGE"
"""Set to 0 / false / off to skip the automatic stage."""
ENV_STAGE_ARGS = "POSTCONV_STAGE_ARGS"
"""Extra ``postconv run`` options for the automatic stage, e.g. ``"--num_envs 256 --steps 500"``."""
ENV_RUN_DIR_FILE = "POSTCONV_RUN_DIR_FILE"
"""If set, the writer records its run folder in this file (how ``postconv train`` finds it)."""


class LoggerSpec(dict):
    """The runner config's ``logger`` entry naming :class:`PostConvLogWriter`.

    A dict for rsl_rl that also equals the name of its backend, and hashes as that name,
    because Isaac Lab's training entry asks ``logger == "wandb"`` (to announce the W&B run)
    and ``logger in {"wandb", "neptune"}`` (to pass ``--log_project_name``).
    """

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return other == self.get("backend")
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self.get("backend"))

    def __setitem__(self, key, value) -> None:
        # Hydra's agent.logger.backend=wandb lands here (Isaac Lab's update_class_from_dict);
        # the spec then equals "wandb" and Isaac Lab announces the run: pin its id first
        if key == "backend" and value == "wandb":
            pin_wandb_run_id()
        dict.__setitem__(self, key, value)


def pin_wandb_run_id() -> None:
    """Give the coming W&B run an id (``WANDB_RUN_ID``) unless one is set: Isaac Lab 3.0
    announces a W&B run with ``wandb.util.generate_id``, which wandb 0.31 no longer has, and
    skips it when the id is given."""
    os.environ.setdefault("WANDB_RUN_ID", _new_wandb_id())


def logger_from_flag(current, name: str, project: str | None = None):
    """What the runner config's ``logger`` becomes when Isaac Lab's ``--logger NAME`` sets it.

    Isaac Lab writes the bare name over the entry, which would drop postconv's writer and with
    it the automatic stage. For ``tensorboard`` and ``wandb`` the writer is kept with that
    backend (its stage options too); ``wandb`` also pins the run's id now (``WANDB_RUN_ID``),
    because Isaac Lab 3.0 announces the run with ``wandb.util.generate_id``, which wandb 0.31
    no longer has. Any other name (``neptune``) is left to rsl_rl, without the stage."""
    if name not in ("tensorboard", "wandb") or not isinstance(current, LoggerSpec):
        return name
    spec = logger_spec(name, current.get("run_stage", True), tuple(current.get("stage_args", ())))
    if name == "wandb":
        pin_wandb_run_id()
        if project:
            spec["backend_cfg"] = {"project_name": project}
    return spec


def _new_wandb_id() -> str:
    """A W&B run id as wandb makes them: 8 characters of lowercase letters and digits."""
    import secrets
    import string

    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def logger_spec(
    backend: str = "tensorboard", run_stage: bool = True, stage_args: tuple[str, ...] = ()
) -> LoggerSpec:
    """A runner config ``logger`` value that keeps ``backend`` and runs the stage after training."""
    return LoggerSpec(
        class_name="postconv.hook:PostConvLogWriter",
        backend=backend,
        run_stage=run_stage,
        stage_args=list(stage_args),
    )
