"""The C MuJoCo world keeps the Isaac Lab tasks' policy contract: same state, same observation
term by term, same targets, same actions of a real checkpoint; and the same actions from the
same state give nearly the same joint trajectories (the simulators differ; the bound is stated).

Isaac Lab's side runs in probe_sim2sim.py (one simulation per process); the MuJoCo side here.
"""

import mujoco
import numpy as np
import pytest
import torch
from conftest import HAS_SIM
from probes import mujoco_states, run_json_probe

if not HAS_SIM:
    pytest.skip("Isaac Lab not installed (bash scripts/setup.sh installs it)", allow_module_level=True)

from postconv.evaluation.policy import load_actor
from postconv.sim2sim.contract import OBS_TERMS, Contract, obs_slices
from postconv.sim2sim.robot import DECIMATION, build_g1
from postconv.storage.checkpoints import open_run

pytestmark = pytest.mark.needs_sim
PROBE = "probe_sim2sim.py"
REPLAY_STEPS = 15
JOINT_TOLERANCE = 0.05
"""rad: joint positions after 0.3 s of the same random actions from the same state (seen: < 0.03)."""
HEIGHT_TOLERANCE = 0.005
"""m: pelvis height after the same 0.3 s (seen: < 0.002)."""


@pytest.fixture(scope="module")
def robot():
    return build_g1()


@pytest.fixture(scope="module")
def probe(trained_run):
    run = open_run(trained_run)
    return (
        run_json_probe(PROBE, "4", "20", str(REPLAY_STEPS)),
        run_json_probe(PROBE, "2", "5", "0", str(run.checkpoints[-1].path)),
        run,
    )


def test_observation_terms_match_isaac_lab_from_the_same_state(robot, probe):
    record, _, _ = probe
    assert record["obs_terms"] == [name for name, _ in OBS_TERMS]
    assert record["joint_names"] == list(robot.isaac_joints)
    contract = Contract(robot)
    obs = contract.observe(
        mujoco_states(robot, record["state"]), np.array(record["command"]), np.array(record["last_action"])
    )
    reference = np.array(record["obs"], dtype=np.float32)
    for name, columns in obs_slices().items():
        np.testing.assert_allclose(obs[:, columns], reference[:, columns], atol=2e-5, err_msg=name)
        assert np.abs(reference[:, columns]).max() > 0.05, f"{name}: the probe's state should exercise it"
    targets = contract.targets(np.array(record["last_action"]))[:, robot.to_isaac]
    np.testing.assert_allclose(targets, np.array(record["target"]), atol=1e-6)


def test_a_checkpoint_acts_the_same_on_both_simulators_observations(robot, probe):
    _, record, run = probe
    actor = load_actor(run.checkpoints[-1].path, run.agent_cfg, 99, 29)
    obs = Contract(robot).observe(
        mujoco_states(robot, record["state"]), np.array(record["command"]), np.array(record["last_action"])
    )
    np.testing.assert_allclose(
        actor(torch.from_numpy(obs)).numpy(), np.array(record["actor_actions"]), atol=1e-4
    )


def test_same_actions_give_the_same_joint_trajectories_for_a_short_horizon(robot, probe):
    record, _, _ = probe
    contract, m = Contract(robot), robot.model
    states = mujoco_states(robot, record["state"])
    data = mujoco.MjData(m)
    for t, actions in enumerate(record["replay_actions"]):
        targets = contract.targets(np.array(actions))
        for i in range(len(states)):
            mujoco.mj_setState(m, data, states[i], mujoco.mjtState.mjSTATE_FULLPHYSICS)
            data.ctrl[:] = targets[i]
            mujoco.mj_step(m, data, DECIMATION)
            mujoco.mj_getState(m, data, states[i], mujoco.mjtState.mjSTATE_FULLPHYSICS)
        reference = mujoco_states(robot, record["replay"][t])
        joint_error = np.abs(contract.joint_pos(states) - contract.joint_pos(reference)).max()
        assert joint_error < JOINT_TOLERANCE, f"step {t}: joints {joint_error:.3f} rad apart"
        assert np.abs(states[:, 3] - reference[:, 3]).max() < HEIGHT_TOLERANCE, (
            f"step {t}: pelvis heights apart"
        )
