"""The velocity tasks' recipe terms respond to their causes, kit-less on the CPU (Newton).

A tilt lowers ``upright`` by its kernel and past 70 degrees ends the episode, an arm pose
lowers ``pose``, a kneeling robot ends its episode, each env meets the ground with its own
foot friction draw (the combination rule does not undo it), the angular momentum term is
MuJoCo's subtree momentum, and the contact buffers hold the most contacts the robot can make.
"""

import math

import mujoco
import numpy as np
import pytest
from conftest import HAS_SIM
from probes import mujoco_states, run_json_probe

if not HAS_SIM:
    pytest.skip("Isaac Lab not installed (bash scripts/setup.sh installs it)", allow_module_level=True)

from postconv.sim2sim.robot import build_g1
from postconv.tasks import velocity

pytestmark = pytest.mark.needs_sim


@pytest.fixture(scope="module")
def train():
    return run_json_probe("probe_recipe.py", "train")


@pytest.fixture(scope="module")
def evaluation():
    return run_json_probe("probe_recipe.py", "eval")


def test_every_recipe_reward_term_is_active(train):
    assert train["reward_terms"] == list(velocity.active_reward_terms(velocity.G1Rewards()))


def test_a_tilt_lowers_upright_by_its_kernel_and_past_70_degrees_ends_the_episode(train):
    upright = train["rewards"]["upright"]
    assert upright[0] == pytest.approx(1.0, abs=1e-4)  # standing in the default pose
    assert upright[1] == pytest.approx(math.exp(-(math.sin(math.radians(75.0)) ** 2) / 0.2), rel=1e-3)
    assert train["terminations"]["fell_over"] == [False, True, False, False]


def test_an_arm_pose_off_its_default_lowers_the_posture_reward(train):
    pose = train["rewards"]["pose"]
    assert pose[0] == pytest.approx(1.0, abs=1e-6)
    assert pose[2] < 0.5


def test_a_kneeling_robot_ends_its_episode_and_no_other_does(train):
    assert train["terminations"]["base_height"] == [False, False, False, True]
    assert not any(train["terminations"]["time_out"])


def test_each_env_meets_the_ground_with_its_own_foot_friction_draw(train):
    contacts = train["contacts"]
    assert contacts["ground_mu"] == [pytest.approx(velocity.GROUND_FRICTION)]
    draws = []
    for env in contacts["per_env"]:
        assert env["contact_friction"], "a standing robot touches the ground with its feet"
        feet = set(np.round(env["foot_mu"], 6))
        assert len(feet) == 1  # one draw per env for all its foot colliders
        draw = feet.pop()
        lo, hi = velocity.FOOT_FRICTION_RANGE
        assert lo <= draw <= hi
        np.testing.assert_allclose(env["contact_friction"], draw, rtol=1e-6)  # the draw is in force
        draws.append(draw)
    assert len(set(draws)) == len(draws)


def test_the_evaluation_variant_meets_the_ground_at_friction_one(evaluation):
    for env in evaluation["contacts"]["per_env"]:
        assert env["contact_friction"]
        np.testing.assert_allclose(env["contact_friction"], 1.0, rtol=1e-6)


def test_angular_momentum_is_mujocos_subtree_momentum_at_the_pelvis(evaluation):
    robot = build_g1()
    data = mujoco.MjData(robot.model)
    pelvis = robot.model.body("pelvis").id
    for state, ours in zip(
        mujoco_states(robot, evaluation["moving_states"]), evaluation["angular_momentum"], strict=True
    ):
        mujoco.mj_setState(robot.model, data, state, mujoco.mjtState.mjSTATE_FULLPHYSICS)
        mujoco.mj_forward(robot.model, data)
        mujoco.mj_subtreeVel(robot.model, data)
        assert np.linalg.norm(data.subtree_angmom[pelvis]) > 0.05  # the robot moves
        np.testing.assert_allclose(ours, data.subtree_angmom[pelvis], rtol=1e-3, atol=1e-4)


def test_mixed_command_worlds_of_sim2sim_draw_from_the_tasks_command_ranges():
    from postconv.sim2sim.worlds import Command

    cfg = velocity.G1FlatEnvCfg()
    ranges = cfg.commands.base_velocity.ranges
    assert (ranges.lin_vel_x, ranges.lin_vel_y, ranges.ang_vel_z) == Command.MIXED_RANGES


def test_contact_buffers_hold_every_contact_the_robot_can_make_with_the_ground():
    model = build_g1().model
    ground = [g for g in range(model.ngeom) if model.geom_bodyid[g] == 0]
    robot = [
        g for g in range(model.ngeom)
        if model.geom_bodyid[g] != 0 and any(
            model.geom_contype[g] & model.geom_conaffinity[o] or model.geom_contype[o] & model.geom_conaffinity[g]
            for o in ground
        )
    ]  # fmt: skip
    # most contacts of one geom with a plane: MuJoCo's plane colliders
    per_plane = {
        mujoco.mjtGeom.mjGEOM_SPHERE: 1,
        mujoco.mjtGeom.mjGEOM_CAPSULE: 2,
        mujoco.mjtGeom.mjGEOM_BOX: 4,
    }
    most = sum(per_plane[mujoco.mjtGeom(int(model.geom_type[g]))] for g in robot)
    assert most <= velocity.NCONMAX
    limited = int(np.sum(model.jnt_limited))
    assert 4 * most + limited <= velocity.NJMAX  # pyramidal cone, condim 3: 4 rows a contact
