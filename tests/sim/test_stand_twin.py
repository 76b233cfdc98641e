"""The C MuJoCo twin of PostConv-Stand-G1 computes the task's rewards as Isaac Lab does: from the
same state, every reward term equal; the same joint soft limits, terminations and episode length.

Isaac Lab's side runs in probe_stand.py (one simulation per process); the twin's side here.
"""

import numpy as np
import pytest
from conftest import HAS_SIM

if not HAS_SIM:
    pytest.skip("Isaac Lab not installed (bash scripts/setup.sh installs it)", allow_module_level=True)

from probes import mujoco_states, run_json_probe

from postconv.cputrain.env import reward_terms, soft_joint_limits
from postconv.sim2sim.contract import Contract
from postconv.sim2sim.robot import build_g1
from postconv.sim2sim.worlds import POLICY_DT
from postconv.tasks import stand

pytestmark = pytest.mark.needs_sim
STEPS = 12


@pytest.fixture(scope="module")
def robot():
    return build_g1()


@pytest.fixture(scope="module")
def probe():
    return run_json_probe("probe_stand.py", "4", str(STEPS))


def test_the_task_has_the_twins_terms_in_the_same_order(probe):
    assert probe["reward_terms"] == list(stand.REWARD_WEIGHTS)
    assert probe["termination_terms"] == ["time_out", "base_height", "bad_orientation"]
    assert len(probe["steps"]) >= STEPS // 2, "the random actions should not end episodes this early"


def test_every_reward_term_matches_isaac_lab_from_the_same_state(robot, probe):
    contract, limits = Contract(robot), soft_joint_limits(robot)
    names = list(stand.REWARD_WEIGHTS)
    seen = np.zeros(len(names))
    for step in probe["steps"]:
        states = mujoco_states(robot, step["state"])
        terms = reward_terms(
            contract, states, np.array(step["actions"]), np.array(step["prev_actions"]),
            np.zeros(len(states), dtype=bool), limits,
        )  # fmt: skip
        reference = np.array(step["step_reward"])
        for i, name in enumerate(names):
            ours = stand.REWARD_WEIGHTS[name] * terms[name]
            np.testing.assert_allclose(ours, reference[:, i], rtol=2e-4, atol=2e-5, err_msg=name)
            seen[i] = max(seen[i], np.abs(reference[:, i]).max())
    quiet = [n for n, s in zip(names, seen, strict=True) if s == 0 and n != "termination_penalty"]
    assert not quiet, f"the probe's states never exercised {quiet}"


def test_soft_joint_limits_step_and_episode_length_are_the_tasks(robot, probe):
    np.testing.assert_allclose(soft_joint_limits(robot), np.array(probe["soft_limits"]), atol=1e-5)
    assert probe["step_dt"] == pytest.approx(POLICY_DT)
    assert round(stand.EPISODE_S / POLICY_DT) == probe["max_episode_length"]
