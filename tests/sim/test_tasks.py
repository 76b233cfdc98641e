"""The G1 tasks build, step, stand, get pushed and train, kit-less on the CPU (Newton)."""

import importlib.metadata
import re

import numpy as np
import pytest
from conftest import HAS_SIM
from probes import run_probe, train

if not HAS_SIM:
    pytest.skip("Isaac Lab not installed (bash scripts/setup.sh installs it)", allow_module_level=True)

from postconv.storage.checkpoints import open_run, training_curve
from postconv.tasks import DISTURBED_TASK, FLAT_TASK, STAND_TASK, g1

pytestmark = pytest.mark.needs_sim
NUM_ENVS = 4


@pytest.fixture(scope="module")
def flat():
    return run_probe("flat", NUM_ENVS, 100)


@pytest.fixture(scope="module")
def disturbed():
    return run_probe("disturbed", NUM_ENVS, 150)


def test_every_joint_is_driven_by_exactly_one_actuator_group():
    for name in g1.JOINT_NAMES:
        groups = [k for k, grp in g1.JOINT_GROUPS.items() if any(re.fullmatch(p, name) for p in grp.joints)]
        assert len(groups) == 1, (name, groups)
    assert len(g1.JOINT_NAMES) == 29


def test_gains_follow_from_the_motors():
    knee = g1.JOINT_GROUPS["hip_roll_knee"]
    # 7520-22 reflected inertia through 4.5 x 5 stages; 10 Hz natural frequency
    assert knee.armature == pytest.approx(0.489e-4 * 22.5**2 + 0.109e-4 * 25 + 0.738e-4)
    assert knee.stiffness == pytest.approx(knee.armature * (2 * 3.141592653589793 * 10) ** 2)
    assert g1.JOINT_GROUPS["ankle"].effort_limit == 50.0  # two 5020 motors through the linkage


def test_tasks_are_registered_for_gymnasium_and_isaaclab_train():
    import gymnasium as gym

    for entry_point in importlib.metadata.entry_points(group="isaaclab.tasks"):
        entry_point.load()  # as `isaaclab train` finds the tasks (isaaclab.cli.load_external_tasks)
    for task in (FLAT_TASK, DISTURBED_TASK, STAND_TASK):
        spec = gym.spec(task)
        assert spec.kwargs["env_cfg_entry_point"].startswith("postconv.tasks.velocity:")
        assert spec.kwargs["rsl_rl_cfg_entry_point"].startswith("postconv.tasks.agents:")
    names = [ep.value for ep in importlib.metadata.entry_points(group="isaaclab.tasks")]
    assert "postconv.tasks.registry" in names


def test_flat_task_has_the_configured_sizes_and_29_dof_names(flat):
    assert flat["obs_dim"] == [3 + 3 + 3 + 3 + 29 + 29 + 29]
    assert flat["action_dim"] == 29
    assert flat["num_bodies"] == 30
    assert sorted(flat["joint_names"]) == sorted(g1.JOINT_NAMES)
    assert {"upright", "pose", "foot_slip", "termination_penalty"} <= set(flat["reward_terms"])
    assert flat["rewards_finite"]


def test_contact_and_constraint_buffers_never_overflow(flat, disturbed):
    # standing, random flailing and falls under pushes, on 4 worlds each
    assert flat["overflow_lines"] == []
    assert disturbed["overflow_lines"] == []


def test_standing_robot_with_zero_action_stays_up_for_its_first_second(flat):
    assert flat["still_terminations"] == 0
    assert flat["still_min_height"] > 0.6  # pelvis starts at 0.76 m; a fall ends near 0.1 m


def _kicks(probe) -> list[float]:
    return [abs(c) for p in probe["pushes"] for dv in p["dv"] for c in dv]


def test_disturbed_task_pushes_within_the_first_episodes_by_the_configured_amount(disturbed):
    assert disturbed["rewards_finite"]
    pushes = disturbed["pushes"]
    assert pushes, "no push in 3 s of simulated time"
    assert min(p["step"] for p in pushes) * disturbed["step_dt"] <= 3.0
    limit = disturbed["push_params"]["velocity"]
    assert max(_kicks(disturbed)) <= limit + 1e-3
    assert max(_kicks(disturbed)) > 0.2 * limit  # a push changes the velocity, within the range


def test_evaluation_variant_without_pushes_never_pushes():
    probe = run_probe("nopush", NUM_ENVS, 150)
    assert probe["pushes"] == []
    assert probe["push_params"] == {"velocity": 0.0, "interval_s": None}


def test_evaluation_pushes_come_at_the_scenario_interval_by_its_amount():
    probe = run_probe("evalpush", NUM_ENVS, 60)  # 1.2 s, pushes every 0.2 to 0.4 s
    per_env_pushes = sum(p["envs"] for p in probe["pushes"])
    assert 3 * NUM_ENVS <= per_env_pushes <= 6 * NUM_ENVS
    assert min(p["step"] for p in probe["pushes"]) * probe["step_dt"] <= 0.4 + 1e-6
    assert 0.2 * 0.5 < max(_kicks(probe)) <= 0.5 + 1e-3


@pytest.mark.parametrize("task", [FLAT_TASK, DISTURBED_TASK])
def test_isaaclab_train_logs_episode_length_and_reward_of_each_task(task, tmp_path):
    # 0.1 s episodes: 5 steps, so episodes end within the 16 steps of 2 iterations
    run = train(task, tmp_path, iterations=2, overrides=("env.episode_length_s=0.1",))
    assert run.parent.name == {FLAT_TASK: "g1_flat", DISTURBED_TASK: "g1_disturbed"}[task]
    assert {p.name for p in run.glob("model_*.pt")} == {"model_0.pt", "model_1.pt"}
    opened = open_run(run)
    for tag in ("Train/mean_reward", "Train/mean_episode_length"):
        curve = training_curve(opened, tag)
        assert curve is not None, f"{tag} not logged"
        assert np.isfinite(curve[1]).all()
    assert 0 < training_curve(opened, "Train/mean_episode_length")[1][-1] <= 5


def test_isaaclab_train_writes_checkpoints_in_isaaclab_log_layout(trained_run):
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", trained_run.name)
    assert {p.name for p in trained_run.glob("model_*.pt")} == {"model_0.pt", "model_1.pt"}
    assert (trained_run / "params" / "env.yaml").is_file()
    assert (trained_run / "params" / "agent.yaml").is_file()
    assert list(trained_run.glob("events.out.tfevents.*")), "TensorBoard events (the training curve)"
