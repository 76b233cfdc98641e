"""A CPU training of PostConv-Stand-G1 in its C MuJoCo twin leaves an Isaac Lab run folder that
every postconv command takes unchanged: the stage evaluates its checkpoints in Isaac Lab,
sim2sim replays them; an interrupted training resumes from its last checkpoint.
"""

import json

import pytest
import torch
from conftest import HAS_SIM

if not HAS_SIM:
    pytest.skip("Isaac Lab not installed (bash scripts/setup.sh installs it)", allow_module_level=True)

from probes import assert_ok, postconv

from postconv.evaluation.policy import load_actor
from postconv.storage.checkpoints import open_run
from postconv.tasks import STAND_TASK

pytestmark = pytest.mark.needs_sim


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cpu") / "stand"
    assert_ok(_train(run, 3))
    return run


def test_the_run_folder_is_an_isaac_lab_run_of_the_stand_task(cpu_run):
    run = open_run(cpu_run)
    assert run.task == STAND_TASK
    assert [c.iteration for c in run.checkpoints] == [0, 2]
    assert run.agent_cfg["actor"]["obs_normalization"] is True
    assert run.agent_cfg["save_interval"] == 10
    assert (cpu_run / "params" / "env.yaml").is_file()
    assert list(cpu_run.glob("events.out.tfevents.*")), "the TensorBoard curve is missing"
    for c in run.checkpoints:
        actor = load_actor(c.path, run.agent_cfg, 99, 29)
        assert actor(torch.zeros(2, 99)).shape == (2, 29)


def _train(run, iterations: int, *extra: str):
    """`postconv train-mujoco` of 16 envs on one thread into ``run``."""
    args = ("--iterations", str(iterations), "--num_envs", "16", "--threads", "1", "--run-dir", str(run))
    return postconv("train-mujoco", *args, *extra)


def _copy(cpu_run, tmp_path):
    import shutil

    return shutil.copytree(cpu_run, tmp_path / "stand")


def test_an_interrupted_training_resumes_from_its_last_checkpoint(cpu_run, tmp_path):
    run = _copy(cpu_run, tmp_path)
    proc = _train(run, 5)
    assert proc.returncode != 0
    assert "--resume" in proc.stdout + proc.stderr
    assert_ok(_train(run, 5, "--resume"))
    assert [c.iteration for c in open_run(run).checkpoints] == [0, 2, 4]
    assert torch.load(run / "model_4.pt", weights_only=False)["iter"] == 4


def test_a_resumed_training_does_not_redo_the_iteration_it_loaded(cpu_run, tmp_path):
    """Cut after iteration 0 (a save at 0, a multiple of the save interval): going on must not
    train iteration 0 again and overwrite its checkpoint, as rsl_rl's load alone would."""
    run = _copy(cpu_run, tmp_path)
    (run / "model_2.pt").unlink()
    (run / "model_1.pt").write_bytes(b"cut short")  # a save the interruption cut
    before = (run / "model_0.pt").read_bytes()
    assert_ok(_train(run, 3, "--resume"))
    assert (run / "model_0.pt").read_bytes() == before
    assert torch.load(run / "model_2.pt", weights_only=False)["iter"] == 2


def test_postconv_evaluates_and_replays_the_cpu_trained_checkpoints(cpu_run):
    assert_ok(
        postconv(
            "run", str(cpu_run), "--num_envs", "4", "--envs-per-checkpoint", "2", "--steps", "10", "--burn-in", "2",
            "--scenarios", "1@1-3", "--from-iter", "0", "--n-boot", "0", "--no-report",
        )
    )  # fmt: skip
    selection = json.loads((cpu_run / "postconv" / "selection.json").read_text())
    assert {c["name"] for c in selection["checkpoints"]} == {"model_0", "model_2"}
    evaluation = json.loads((cpu_run / "postconv" / "evaluation.json").read_text())
    assert evaluation["task"] == STAND_TASK
    assert_ok(
        postconv(
            "sim2sim", str(cpu_run), "--worlds", "nominal", "latency=20ms", "--episodes", "2", "--seconds", "0.5",
            "--no-wandb",
        )
    )  # fmt: skip
    summary = json.loads((cpu_run / "postconv" / "sim2sim" / "summary.json").read_text())
    assert summary["worlds"] == ["nominal", "latency=20ms"]
