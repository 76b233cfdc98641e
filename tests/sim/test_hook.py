"""The training log writer: TensorBoard or W&B as usual, the stage switch, the W&B project
the selection joins (no simulation here; rsl_rl comes with the simulator stack)."""

import json
import os
import re

import pytest
from conftest import HAS_SIM

if not HAS_SIM:
    pytest.skip("Isaac Lab not installed (bash scripts/setup.sh installs it)", allow_module_level=True)

from postconv.dashboard.log import training_project
from postconv.hook import PostConvLogWriter, stage_command, stage_enabled
from postconv.tasks.logger import ENV_SWITCH, logger_from_flag, logger_spec


@pytest.mark.parametrize(
    ("value", "enabled"), [(None, True), ("1", True), ("0", False), ("off", False), ("false", False)]
)
def test_the_environment_switch_turns_the_stage_off(monkeypatch, value, enabled):
    if value is None:
        monkeypatch.delenv(ENV_SWITCH, raising=False)
    else:
        monkeypatch.setenv(ENV_SWITCH, value)
    assert stage_enabled(True) is enabled
    assert stage_enabled(False) is False


def test_the_logger_entry_survives_isaac_labs_hash_test_and_names_our_writer():
    spec = logger_spec("tensorboard", stage_args=("--num_envs", "8"))
    assert spec not in {"wandb", "neptune"}  # Isaac Lab's check must not raise
    assert spec["class_name"] == "postconv.hook:PostConvLogWriter"
    assert spec["stage_args"] == ["--num_envs", "8"]


@pytest.mark.parametrize("flag", ["tensorboard", "wandb"])
def test_isaac_labs_logger_flag_keeps_our_writer_and_its_stage_options(flag, monkeypatch):
    monkeypatch.setenv("WANDB_RUN_ID", "x")  # set first so that teardown removes the id the flag pins
    monkeypatch.delenv("WANDB_RUN_ID")
    current = logger_spec("tensorboard", run_stage=False, stage_args=("--steps", "50"))
    spec = logger_from_flag(current, flag, "g1-sweeps")
    assert spec["class_name"] == "postconv.hook:PostConvLogWriter"
    assert (spec["backend"], spec["run_stage"], spec["stage_args"]) == (flag, False, ["--steps", "50"])
    # what Isaac Lab's training entry asks of the entry after --logger
    assert spec == flag
    assert (spec in {"wandb", "neptune"}) == (flag == "wandb")
    if flag == "wandb":  # the run's id is known before Isaac Lab announces it
        assert re.fullmatch(r"[a-z0-9]{8}", os.environ["WANDB_RUN_ID"])
        assert spec["backend_cfg"] == {"project_name": "g1-sweeps"}


def test_a_backend_set_to_wandb_through_hydra_pins_the_run_id_first(monkeypatch):
    from isaaclab.utils.dict import update_class_from_dict

    monkeypatch.setenv("WANDB_RUN_ID", "x")
    monkeypatch.delenv("WANDB_RUN_ID")
    spec = logger_spec("tensorboard")
    update_class_from_dict(spec, {"backend": "wandb"})  # what agent.logger.backend=wandb does
    assert spec == "wandb"
    assert re.fullmatch(r"[a-z0-9]{8}", os.environ["WANDB_RUN_ID"])


def test_other_loggers_are_left_to_rsl_rl():
    assert logger_from_flag(logger_spec(), "neptune") == "neptune"
    assert logger_from_flag("tensorboard", "wandb") == "wandb"  # a config without our writer stays as it was


def test_wandb_backend_uploads_the_run_files_and_the_selection_joins_its_project(tmp_path, monkeypatch):
    import wandb

    wandb.teardown()  # wandb keeps the settings of its first use in a process; this test sets its own
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_PROJECT", "g1-sweeps")
    run = tmp_path / "run"
    (run / "params").mkdir(parents=True)
    for name in ("params/agent.yaml", "params/env.yaml", "run.json", "model_0.pt"):
        (run / name).write_text("{}")
    writer = PostConvLogWriter(str(run), backend="wandb", run_stage=False)
    writer.add_scalar("Train/mean_reward", 1.0, 0)
    writer.save_model(str(run / "model_0.pt"), 0)
    writer.stop()
    wandb.teardown()
    (log,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    # the training's run is recorded: the stage logs its selection into it too
    record = json.loads((run / "postconv" / "wandb_training.json").read_text())
    assert log.stem == f"run-{record['id']}"
    assert record["project"] == "g1-sweeps"
    # what `postconv fetch` downloads later: checkpoints, configs and manifest under their run-folder names
    (files,) = tmp_path.glob("wandb/offline-run-*/files")
    uploaded = {p.relative_to(files).as_posix() for p in files.rglob("*") if p.is_file()}
    assert {"model_0.pt", "params/agent.yaml", "params/env.yaml", "run.json"} <= uploaded
    assert training_project({"logger": {"backend": "wandb"}}) == "g1-sweeps"
    assert training_project({"logger": {"backend": "tensorboard"}}) is None
    assert training_project({"logger": "wandb", "wandb_project": "isaaclab"}) == "isaaclab"


@pytest.mark.parametrize(
    ("stage_args", "env_args", "message"),
    [
        ("--k -1", "", "--k: radii must be finite numbers >= 0"),
        ([], "--envs-per-checkpoint 0", "--envs-per-checkpoint must be an integer >= 1; got 0"),
        (["--scenarios", "0.5@3-1"], "", "push interval must satisfy 0 < low <= high"),
    ],
)
def test_bad_stage_args_stop_the_training_at_its_start(tmp_path, monkeypatch, stage_args, env_args, message):
    monkeypatch.delenv(ENV_SWITCH, raising=False)
    monkeypatch.setenv("POSTCONV_STAGE_ARGS", env_args)
    with pytest.raises(ValueError, match=re.escape(message)):
        PostConvLogWriter(str(tmp_path), stage_args=stage_args)
    PostConvLogWriter(str(tmp_path), run_stage=False, stage_args=stage_args).stop()  # off: nothing to check


def test_a_psi_term_the_task_lacks_stops_the_training_before_its_first_iteration(tmp_path, monkeypatch):
    from postconv.tasks.velocity import TASKS

    monkeypatch.delenv(ENV_SWITCH, raising=False)
    monkeypatch.delenv("POSTCONV_STAGE_ARGS", raising=False)
    env_cfg = TASKS["stand"]()
    good = PostConvLogWriter(str(tmp_path / "a"), stage_args="--psi alive=1 flat_orientation_l2=1")
    good.store_config(env_cfg, {"device": "cpu"})
    bad = PostConvLogWriter(str(tmp_path / "b"), stage_args="--psi alive=1 feet_slide=-1")
    with pytest.raises(ValueError, match=re.escape("the task has no reward terms ['feet_slide']")):
        bad.store_config(env_cfg, {"device": "cpu"})
    for writer in (good, bad):
        writer.inner.close()


@pytest.mark.parametrize("as_dict", [False, True])
def test_the_stage_evaluates_on_the_simulations_device_not_the_learners(tmp_path, monkeypatch, as_dict):
    from postconv.tasks.velocity import TASKS

    monkeypatch.delenv(ENV_SWITCH, raising=False)
    monkeypatch.delenv("POSTCONV_STAGE_ARGS", raising=False)
    env_cfg = TASKS["flat"]()
    env_cfg.sim.device = "cuda:1"
    writer = PostConvLogWriter(str(tmp_path))
    writer.store_config(env_cfg.to_dict() if as_dict else env_cfg, {"device": "cpu"})
    writer.inner.close()
    command = stage_command(tmp_path, writer.device, [])
    assert command[command.index("--device") + 1] == "cuda:1"


def test_stage_sizes_are_checked_for_the_simulations_device_when_training_starts(tmp_path, monkeypatch):
    from postconv.tasks.velocity import TASKS

    monkeypatch.delenv(ENV_SWITCH, raising=False)
    monkeypatch.setenv("POSTCONV_STAGE_ARGS", "--checkpoints-per-job 8")
    env_cfg = TASKS["flat"]()
    env_cfg.sim.device = "cuda:0"
    on_gpu = PostConvLogWriter(str(tmp_path / "gpu"))  # 8 of a GPU env's 16 groups: fine
    on_gpu.store_config(env_cfg, {"device": "cuda:0"})
    assert on_gpu.stage_config.device == "cuda:0"
    on_cpu = PostConvLogWriter(str(tmp_path / "cpu"))
    env_cfg.sim.device = "cpu"
    with pytest.raises(
        ValueError, match="checkpoints_per_job must be between 1 and the env's 4 groups; got 8"
    ):
        on_cpu.store_config(env_cfg, {"device": "cpu"})
    for writer in (on_gpu, on_cpu):
        writer.inner.close()
    # a --device among the stage args wins over the simulation's, at check time as at run time
    monkeypatch.setenv("POSTCONV_STAGE_ARGS", "--device=cpu --checkpoints-per-job 8")
    with pytest.raises(
        ValueError, match="checkpoints_per_job must be between 1 and the env's 4 groups; got 8"
    ):
        PostConvLogWriter(str(tmp_path / "forced"))  # refused before anything is logged
