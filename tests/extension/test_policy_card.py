"""The exported policy's card: read from the params/env.yaml Isaac Lab dumps for each G1 task, and
equal, term by term and joint by joint, to the policy contract sim2sim checks against a live
Isaac Lab env (tests/sim/test_sim2sim_contract.py). No simulator: the task configs are dumped
as Isaac Lab's train script dumps them."""

import json

import numpy as np
import pytest

pytest.importorskip("isaaclab", reason="the task configs need Isaac Lab (bash scripts/setup.sh installs it)")
pytest.importorskip("mujoco", reason="the contract's G1 needs MuJoCo (bash scripts/setup.sh installs it)")

from postconv.review.policy_card import policy_card, write_policy_card
from postconv.sim2sim.contract import OBS_DIM, OBS_TERMS, TRAINING_NOISE
from postconv.sim2sim.robot import build_g1
from postconv.tasks import DISTURBED_TASK, FLAT_TASK, STAND_TASK


def _run(tmp_path, task: str, edit=None):
    """A run folder with the task's env config dumped (after ``edit(cfg)``, if given)."""
    from isaaclab.utils.io import dump_yaml

    from postconv.tasks import velocity

    cfg = {FLAT_TASK: velocity.G1FlatEnvCfg, DISTURBED_TASK: velocity.G1DisturbedEnvCfg,
           STAND_TASK: velocity.G1StandEnvCfg}[task]()  # fmt: skip
    if edit is not None:
        edit(cfg)
    dump_yaml(str(tmp_path / "params" / "env.yaml"), cfg)
    return tmp_path


@pytest.mark.parametrize("task", [FLAT_TASK, DISTURBED_TASK, STAND_TASK])
def test_the_card_states_the_contract_the_policy_was_trained_with(tmp_path, task):
    card = policy_card(_run(tmp_path, task), task, {"clip_actions": 100.0}, OBS_DIM, 29)
    assert card["checks"] == {"observation": "ok", "action_term": "ok", "joints": "ok"}
    terms = card["observation"]["terms"]
    assert [(t["name"], t["size"]) for t in terms] == list(OBS_TERMS)
    assert all(t["scale"] is None and t["clip"] is None and t["history"] == 0 for t in terms)
    for t in terms:  # the training's noise, named so that nobody adds it on the robot
        half = TRAINING_NOISE.get(t["name"])
        assert (t["training_noise"] is None) == (half is None)
        if half is not None:
            assert (t["training_noise"]["n_min"], t["training_noise"]["n_max"]) == pytest.approx(
                (-half, half)
            )
    robot = build_g1()
    joints = card["joints"]
    assert [j["name"] for j in joints] == list(robot.isaac_joints)
    order = robot.to_isaac
    np.testing.assert_allclose([j["default"] for j in joints], robot.params.default_pos[order])
    np.testing.assert_allclose([j["offset"] for j in joints], robot.params.default_pos[order])
    np.testing.assert_allclose([j["scale"] for j in joints], robot.params.action_scale[order])
    np.testing.assert_allclose([j["stiffness"] for j in joints], robot.params.stiffness[order])
    np.testing.assert_allclose([j["damping"] for j in joints], robot.params.damping[order])
    assert card["control"]["period_s"] == pytest.approx(0.02)
    assert card["control"]["rate_hz"] == pytest.approx(50.0)
    assert card["action"]["clip"] == [-100.0, 100.0]


def test_a_card_that_does_not_add_up_to_the_actor_says_so(tmp_path):
    run = _run(tmp_path, FLAT_TASK)
    card = policy_card(run, FLAT_TASK, {}, OBS_DIM + 3, 29)
    assert card["checks"]["observation"] == f"the terms read give {OBS_DIM}, the actor takes {OBS_DIM + 3}"
    assert card["action"]["clip"] is None
    foreign = policy_card(run, "Isaac-Velocity-Flat-Anymal-D-v0", {}, OBS_DIM, 29)
    assert foreign["joints"] is None
    assert (
        foreign["checks"]["joints"]
        == "the joints could not be read for all 29 actions; see the task's config"
    )


def test_the_card_is_written_with_what_it_belongs_to(tmp_path):
    card = policy_card(_run(tmp_path, STAND_TASK), STAND_TASK, {}, OBS_DIM, 29)
    path = write_policy_card(
        tmp_path / "model_5_policy.json", card, {"checkpoint": "model_5", "iteration": 5}
    )
    written = json.loads(path.read_text())
    assert (written["checkpoint"], written["iteration"], written["card_version"]) == ("model_5", 5, 1)
    assert written["joints"] == card["joints"]


@pytest.mark.parametrize("task", [FLAT_TASK, STAND_TASK])
def test_a_dumped_env_yaml_with_python_tags_reads_as_plain_data(tmp_path, task):
    # the velocity tasks' env.yaml holds python/object/apply:builtins.slice tags: read safely,
    # so the GPU sizing sees the training's env count
    from postconv.storage.checkpoints import Run, read_params, training_envs

    run = _run(tmp_path, task)
    env = read_params(run / "params" / "env.yaml")
    assert isinstance(env["scene"]["num_envs"], int)
    assert training_envs(Run(path=run, checkpoints=(), agent_cfg={}, task=task)) == env["scene"]["num_envs"]


def _history_and_fixed_offset(cfg):
    cfg.observations.policy.history_length = 3
    cfg.actions.joint_pos.use_default_offset = False
    cfg.actions.joint_pos.offset = 0.1


def test_a_history_multiplies_the_terms_and_a_fixed_offset_replaces_the_defaults(tmp_path):
    run = _run(tmp_path, FLAT_TASK, _history_and_fixed_offset)
    card = policy_card(run, FLAT_TASK, {}, 3 * OBS_DIM, 29)
    assert card["checks"]["observation"] == "ok"
    assert [(t["name"], t["size"], t["history"]) for t in card["observation"]["terms"]] == [
        (name, 3 * n, 3) for name, n in OBS_TERMS
    ]
    assert {j["offset"] for j in card["joints"]} == {0.1}
