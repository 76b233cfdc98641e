"""What a resumed CPU training reads back: the push scale the curriculum had reached, and whether
a run is trained to its end. (The resume itself runs in tests/sim/test_train_mujoco.py.)"""

import json
import re

import pytest
import torch

pytest.importorskip("tensordict", reason="the twin is an rsl_rl VecEnv: needs the sim install (rsl-rl-lib)")

from postconv.cputrain.train import TRAIN_DEFAULTS, _push_scale_at, is_trained, training_settings


def _run(tmp_path, scales):
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    (run / "params").mkdir(parents=True)
    (run / "params" / "agent.yaml").write_text("actor:\n  activation: elu\n")
    (run / "model_0.pt").write_bytes(b"")
    writer = SummaryWriter(log_dir=str(run))
    for it, scale in scales:
        writer.add_scalar("Curriculum/push_scale", scale, it)
    writer.close()
    return run


def test_the_push_scale_a_resume_starts_with_is_the_one_logged_with_its_first_iteration(tmp_path):
    run = _run(tmp_path, [(0, 0.25), (1, 0.3), (2, 0.35)])
    assert _push_scale_at(run, 1) == pytest.approx(0.3)
    assert _push_scale_at(run, 3) == pytest.approx(0.35)  # not logged yet: the latest before


def test_a_run_without_the_curriculum_logged_resumes_with_the_default(tmp_path):
    run = _run(tmp_path, [])
    assert _push_scale_at(run, 1) is None


def test_a_run_is_trained_only_when_its_last_checkpoint_loads(tmp_path):
    torch.save({"iter": 4}, tmp_path / "model_4.pt")
    assert is_trained(tmp_path, 5)
    assert not is_trained(tmp_path, 6)
    (tmp_path / "model_4.pt").write_bytes(b"cut short")
    assert not is_trained(tmp_path, 5)


def test_a_cpu_training_logs_with_rsl_rls_own_writer_and_starts_no_stage_at_exit():
    """The runner config turns a bare logger name into postconv's writer (Isaac Lab's --logger
    flag); a CPU training asks for the stage explicitly (--stage), so it must not get one at exit."""
    from postconv.cputrain.train import agent_config

    assert agent_config(seed=0, iterations=10)["logger"] == "tensorboard"


def _started(tmp_path, **twin):
    run = tmp_path / "stand"
    run.mkdir()
    (run / "twin.json").write_text(
        json.dumps({"num_envs": 64, "seed": 7, "curriculum": None, "iterations": 2000, **twin})
    )
    return run


NOTHING_GIVEN = {"iterations": None, "num_envs": None, "seed": None, "curriculum": None}


def test_a_resume_goes_on_as_the_run_started_unless_told_to_train_longer(tmp_path):
    run = _started(tmp_path)
    assert training_settings(NOTHING_GIVEN, run, resume=True) == {
        "iterations": 2000, "num_envs": 64, "seed": 7, "curriculum": False}  # fmt: skip
    longer = training_settings({**NOTHING_GIVEN, "iterations": 3000, "seed": 7}, run, resume=True)
    assert (longer["iterations"], longer["seed"]) == (3000, 7)
    assert training_settings(NOTHING_GIVEN, None, resume=False) == TRAIN_DEFAULTS


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"seed": 0}, "was started otherwise: --seed 0 (started with 7)"),
        (
            {"num_envs": 256, "curriculum": True},
            "--num_envs 256 (started with 64), the curriculum (started with --no-curriculum)",
        ),
    ],
)
def test_a_resume_that_would_change_the_runs_draws_is_refused(tmp_path, given, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        training_settings({**NOTHING_GIVEN, **given}, _started(tmp_path), resume=True)


def test_a_resume_of_a_folder_that_is_no_cpu_training_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"is .* a run of `postconv train-mujoco`"):
        training_settings(NOTHING_GIVEN, tmp_path, resume=True)
    (tmp_path / "twin.json").write_text("[]")  # not what train-mujoco writes
    with pytest.raises(FileNotFoundError, match=r"TypeError: .* is .* a run of `postconv train-mujoco`"):
        training_settings(NOTHING_GIVEN, tmp_path, resume=True)


def test_an_extended_run_is_recorded_so_the_next_resume_goes_on_to_its_new_length(tmp_path):
    from postconv.cputrain.train import _extend, started_with

    run = _started(tmp_path)
    _extend(run, 3000)
    assert started_with(run)["iterations"] == 3000
    assert json.loads((run / "twin.json").read_text())["started_iterations"] == 2000
