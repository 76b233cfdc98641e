"""Shifted worlds: the grammar, bad worlds named with what to write, and each shift doing what it claims.

Every check here builds the real C MuJoCo G1; no Isaac Lab is needed.
"""

import mujoco
import numpy as np
import pytest

from postconv.sim2sim.robot import build_g1
from postconv.sim2sim.worlds import DEFAULT_WORLDS, Command, World, parse_world, parse_worlds, world_model


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("strenght=0.8", "'strenght=0.8' is not KEY=VALUE with KEY one of strength, latency"),
        ("strength", "'strength' is not KEY=VALUE"),
        ("strength=strong", "strength='strong': could not convert string to float"),
        ("strength=0", "strength must be > 0; got 0.0"),
        ("strength=nan", "strength = nan is not finite"),
        ("friction=-1", "friction must be > 0; got -1.0"),
        ("latency=7ms", "latency 7 ms is not a multiple of the 5 ms physics step"),
        ("obs_delay=10ms", "obs_delay 10 ms is not a multiple of the 20 ms policy step"),
        ("noise=-1", "noise must be >= 0; got -1.0"),
        ("mass=-6", "torso_mass -6.0 kg would leave the torso (7.8 kg) too light"),
        ("push=1@3-1", "push interval must satisfy 0 < low <= high"),
        ("command=run:2", "command 'run:2': write stand, mixed, walk:VX, side:VY or turn:WZ"),
        ("command=walk", "command 'walk': write stand, mixed"),
        ("mass=1,mass=2", "mass is given twice"),
        (
            "push=1@2-4+dyn",
            "+dyn draws per-env dynamics in the stage's Isaac Lab samples, not in sim2sim's worlds",
        ),
    ],
)
def test_bad_world_is_named_with_what_to_write(text, message):
    with pytest.raises(ValueError, match="world") as err:
        parse_world(text)
    assert message in str(err.value)


def test_worlds_must_be_distinct_and_present():
    with pytest.raises(ValueError, match="distinct worlds"):
        parse_worlds(["nominal", "nominal"])
    with pytest.raises(ValueError, match="one or more"):
        parse_worlds([])


def test_world_text_sets_exactly_its_fields():
    w = parse_world("strength=0.8,latency=20ms,push=1@2-4,command=turn:1,tilt=3")
    assert (w.strength, w.latency_ms, w.latency_physics_steps, w.tilt_deg) == (0.8, 20.0, 4, 3.0)
    assert (w.push.velocity, w.push.interval_s) == (1.0, (2.0, 4.0))
    assert w.command.fixed() == (0.0, 0.0, 1.0)
    assert w.name == "strength=0.8,latency=20ms,push=1@2-4,command=turn:1,tilt=3"
    assert parse_world("latency=0.01s").latency_physics_steps == 2
    assert parse_world("push=none").push is None
    assert parse_world("nominal") == World()


def test_default_grid_parses_and_spans_every_kind_of_shift():
    worlds = parse_worlds(DEFAULT_WORLDS)
    nominal = World()
    changed = {
        f
        for w in worlds
        for f in w.__dataclass_fields__
        if f != "name" and getattr(w, f) != getattr(nominal, f)
    }
    assert {"strength", "latency_ms", "friction", "torso_mass", "push", "noise", "command"} <= changed


@pytest.fixture(scope="module")
def nominal():
    return build_g1()


def _hold(robot, qpos_offset: float = 0.0):
    """A MjData in the standing pose, 1 m up (no contact), joints offset from their targets."""
    m = robot.model
    d = mujoco.MjData(m)
    d.qpos[2] = 1.0
    d.qpos[3] = 1.0
    d.qpos[7:] = robot.params.default_pos + qpos_offset
    d.ctrl[:] = robot.params.default_pos
    mujoco.mj_forward(m, d)
    return d


@pytest.mark.parametrize("strength", [0.5, 0.8])
def test_strength_scales_the_torque_at_a_given_error(nominal, strength):
    shifted = world_model(parse_world(f"strength={strength}"))
    error = 0.01  # rad: small enough that no joint reaches its effort limit
    base = _hold(nominal, -error).actuator_force
    weak = _hold(shifted, -error).actuator_force
    np.testing.assert_allclose(base, nominal.params.stiffness * error, rtol=1e-9)
    np.testing.assert_allclose(weak, strength * base, rtol=1e-9)
    # the effort limit scales alike: a large error saturates at strength x effort
    np.testing.assert_allclose(
        np.abs(_hold(shifted, -5.0).actuator_force), strength * nominal.params.effort_limit, rtol=1e-9
    )


def test_joint_friction_and_damping_are_in_effect(nominal):
    shifted = world_model(parse_world("joint_friction=0.5,joint_damping=0.7"))
    hinge = slice(6, None)
    assert np.all(nominal.model.dof_frictionloss[hinge] == 0)
    assert np.all(nominal.model.dof_damping[hinge] == 0)
    np.testing.assert_allclose(shifted.model.dof_frictionloss[hinge], 0.5)
    np.testing.assert_allclose(shifted.model.dof_damping[hinge], 0.7)
    assert shifted.model.dof_frictionloss[:6].sum() == 0  # the free joint stays free


@pytest.mark.parametrize("friction", [0.3, 1.0])
def test_foot_ground_friction_is_the_coefficient_in_effect(friction):
    robot = world_model(parse_world(f"friction={friction}"))
    m = robot.model
    d = mujoco.MjData(m)
    d.qpos[2] = 0.74  # feet a little into the ground: contacts exist
    d.qpos[3] = 1.0
    d.qpos[7:] = robot.params.default_pos
    mujoco.mj_forward(m, d)
    feet = {m.body(n).id for n in ("left_ankle_roll_link", "right_ankle_roll_link")}
    contacts = [d.contact[i] for i in range(d.ncon)]
    assert contacts, "the standing G1 should touch the ground"
    for c in contacts:
        assert {m.geom_bodyid[c.geom1], m.geom_bodyid[c.geom2]} & feet
        assert c.friction[0] == pytest.approx(friction)


def test_torso_mass_and_center_of_mass_shift(nominal):
    shifted = world_model(parse_world("mass=3,com_x=0.05,com_y=-0.02"))
    assert shifted.model.body_mass.sum() == pytest.approx(nominal.model.body_mass.sum() + 3.0)
    torso = nominal.model.body("torso_link").id
    np.testing.assert_allclose(
        shifted.model.body_ipos[torso] - nominal.model.body_ipos[torso], [0.05, -0.02, 0.0], atol=1e-12
    )


def test_nominal_world_has_the_tasks_actuators_and_no_self_collision(nominal):
    m = nominal.model
    np.testing.assert_allclose(m.actuator_gainprm[:, 0], nominal.params.stiffness)
    np.testing.assert_allclose(-m.actuator_biasprm[:, 2], nominal.params.damping)
    np.testing.assert_allclose(m.dof_armature[6:], nominal.params.armature)
    floor = m.geom("floor").id
    robot = [g for g in range(m.ngeom) if g != floor and (m.geom_contype[g] or m.geom_conaffinity[g])]
    for a in robot:
        assert not (
            m.geom_contype[a] & m.geom_conaffinity[robot[0]]
        )  # robot geoms never collide with each other
        assert m.geom_contype[a] & m.geom_conaffinity[floor] or m.geom_contype[floor] & m.geom_conaffinity[a]


def test_command_schedules():
    assert Command.parse("stand").fixed() == (0.0, 0.0, 0.0)
    assert Command.parse("walk:0.5").fixed() == (0.5, 0.0, 0.0)
    assert Command.parse("side:-0.3").fixed() == (0.0, -0.3, 0.0)
    assert Command.parse("mixed").fixed() is None
