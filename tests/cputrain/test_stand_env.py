"""The stand task's C MuJoCo twin: falls end episodes with the penalty, rewards are the weighted
terms times the step, pushes fire on each world's timer, resets restore the standing pose,
the curriculum follows the falls. (Term-by-term equality with Isaac Lab: tests/sim/test_stand_twin.py.)
"""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("tensordict", reason="the twin is an rsl_rl VecEnv: needs the sim install (rsl-rl-lib)")

from postconv.cputrain.env import (
    PushCurriculum,
    StandEnv,
    StandEnvConfig,
    falls,
    reward_terms,
    state_features,
)
from postconv.sim2sim.contract import TRAINING_NOISE, obs_slices
from postconv.sim2sim.robot import build_g1
from postconv.sim2sim.worlds import POLICY_DT
from postconv.tasks import stand
from postconv.tasks.scenarios import NO_PUSH, PushScenario


@pytest.fixture(scope="module")
def robot():
    return build_g1()


def _env(robot, **changes) -> StandEnv:
    config = StandEnvConfig(num_envs=4, seed=3, threads=1, **changes)
    return StandEnv(config, robot)


def _tilted(env: StandEnv, degrees: float, height: float = 0.74) -> np.ndarray:
    """Standing states rolled by ``degrees`` about x, the pelvis at ``height``."""
    states = np.tile(env.contract.standing_state(env.robot.nstate), (1, 1))
    qpos = env.contract.qpos(states)
    half = math.radians(degrees) / 2
    qpos[:, 2] = height
    qpos[:, 3:7] = (math.cos(half), math.sin(half), 0.0, 0.0)
    return states


@pytest.mark.parametrize(
    ("degrees", "height", "fell"),
    [(0.0, 0.74, False), (59.0, 0.74, False), (61.0, 0.74, True), (0.0, 0.51, False), (0.0, 0.49, True)],
)
def test_a_fall_is_a_pelvis_too_tilted_or_too_low(robot, degrees, height, fell):
    env = _env(robot)
    assert falls(env.contract, _tilted(env, degrees, height))[0] == fell
    env.close()


def test_a_state_that_is_not_finite_is_a_fall(robot):
    env = _env(robot)
    states = _tilted(env, 0.0)
    states[0, 5] = np.nan
    assert falls(env.contract, states)[0]
    env.close()


def test_rewards_are_the_weighted_terms_times_the_policy_step(robot):
    env = _env(robot)
    for _ in range(3):
        _, reward, done, _ = env.step(0.3 * torch.ones(4, 29))
    assert not done.any()
    terms = reward_terms(
        env.contract, env.states, env.actions, env.prev_actions, np.zeros(4, bool), env.soft_limits
    )
    expected = np.stack([w * terms[n] * POLICY_DT for n, w in stand.REWARD_WEIGHTS.items()], axis=1)
    np.testing.assert_allclose(env.step_terms, expected, rtol=1e-12)
    np.testing.assert_allclose(reward.numpy(), expected.sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(env.step_features, state_features(env.contract, env.states))
    env.close()


def test_a_fall_ends_the_episode_with_the_penalty_and_resets_to_the_standing_pose(robot):
    env = _env(robot)
    env.states[1] = _tilted(env, 80.0)[0]
    _, reward, done, extras = env.step(torch.zeros(4, 29))
    assert done.tolist() == [False, True, False, False]
    assert not extras["time_outs"].any()
    penalty = stand.REWARD_WEIGHTS["termination_penalty"] * POLICY_DT
    assert reward[1] < penalty + 0.1 < reward[0]
    np.testing.assert_allclose(env.contract.joint_pos(env.states)[1], env.contract.default_isaac)
    assert env.ep_len[1] == 0
    assert not env.actions[1].any()
    env.close()


def test_the_episode_times_out_after_twenty_seconds_without_the_penalty(robot):
    env = _env(robot)
    env.ep_len[:] = env.max_episode_length - 1
    _, reward, done, extras = env.step(torch.zeros(4, 29))
    assert env.max_episode_length == round(stand.EPISODE_S / POLICY_DT)
    assert done.all()
    assert extras["time_outs"].all()
    assert (reward > 0).all()
    env.close()


def test_a_push_kicks_only_the_world_whose_timer_ran_out_within_the_scenarios_velocity(robot):
    pushed = _env(robot, curriculum=None, push=PushScenario("p", (1.0, 3.0), 0.7))
    calm = _env(robot, curriculum=None, push=NO_PUSH)
    calm.states[:] = pushed.states
    pushed.push_timer[:] = [POLICY_DT / 2, 10.0, 10.0, 10.0]
    pushed.step(torch.zeros(4, 29))
    calm.step(torch.zeros(4, 29))
    qv = 1 + robot.model.nq
    kick = pushed.states[:, qv : qv + 2] - calm.states[:, qv : qv + 2]
    assert np.abs(kick[0]).max() > 0
    assert np.abs(kick[0]).max() <= 0.7
    np.testing.assert_array_equal(kick[1:], 0.0)
    np.testing.assert_array_equal(np.delete(pushed.states - calm.states, [qv, qv + 1], axis=1), 0.0)
    assert 1.0 <= pushed.push_timer[0] <= 3.0
    pushed.close()
    calm.close()


def test_observation_noise_stays_within_the_tasks_training_widths(robot):
    noisy, clean = _env(robot), _env(robot, observation_noise=False)
    diff = noisy.get_observations()["policy"].numpy() - clean.get_observations()["policy"].numpy()
    for name, columns in obs_slices().items():
        width = TRAINING_NOISE.get(name, 0.0)
        assert np.abs(diff[:, columns]).max() <= width + 1e-6, name
        if width:
            assert np.abs(diff[:, columns]).max() > width / 4, f"{name}: noise should be drawn"
    noisy.close()
    clean.close()


@pytest.mark.parametrize(
    ("scale", "falls_per_minute", "expected"),
    [(0.5, 0.5, 0.55), (1.0, 0.5, 1.0), (0.5, 2.0, 0.5), (0.5, 4.0, 0.45), (0.25, 4.0, 0.25)],
)
def test_the_curriculum_raises_pushes_when_falls_are_rare_and_lowers_them_when_frequent(
    scale, falls_per_minute, expected
):
    assert PushCurriculum().next_scale(scale, falls_per_minute) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"start": 0.1}, "floor <= start"),
        ({"step": 0.0}, "step > 0"),
        ({"raise_below": 4.0}, "must not exceed lower_above"),
    ],
)
def test_a_curriculum_that_cannot_work_is_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        PushCurriculum(**changes)


def test_the_same_seed_gives_the_same_run(robot):
    a, b = _env(robot), _env(robot)
    for _ in range(5):
        oa, ra, _, _ = a.step(0.2 * torch.ones(4, 29))
        ob, rb, _, _ = b.step(0.2 * torch.ones(4, 29))
    torch.testing.assert_close(oa["policy"], ob["policy"], rtol=0, atol=0)
    torch.testing.assert_close(ra, rb, rtol=0, atol=0)
    a.close()
    b.close()


def test_each_world_meets_the_same_resets_and_pushes_whatever_the_others_do(robot):
    """Common random numbers per env: a fall in one world does not shift the draws of another."""
    a, b = _env(robot, curriculum=None), _env(robot, curriculum=None)
    a.states[0] = _tilted(a, 80.0)[0]  # world 0 of a falls at once, b's world 0 much later
    first_reset = {}
    for _ in range(150):
        for env, key in ((a, "a"), (b, "b")):
            env.step(torch.zeros(4, 29))
            if env.ep_len[0] == 0 and key not in first_reset:
                first_reset[key] = env.states[0].copy()
        np.testing.assert_array_equal(a.push_timer, b.push_timer)
    assert set(first_reset) == {"a", "b"}, "both worlds 0 should have fallen and reset"
    np.testing.assert_array_equal(first_reset["a"][1:], first_reset["b"][1:])  # [0] is the clock
    a.close()
    b.close()


def test_the_studys_twin_samples_count_the_steps_the_stage_counts(robot):
    """After a fall the next ``burn_in`` steps are left out (the respawn's push-off), the fall
    itself always counts, and an env's steps count again once it has stood that long."""
    from postconv.study.samples import _rollout

    gen = torch.Generator().manual_seed(0)

    def flailing(obs):  # large random actions: the robot falls within a second or two
        return 3.0 * torch.randn(obs.shape[0], 29, generator=gen)

    burn_in = 5
    env = _env(robot, observation_noise=False, curriculum=None, push=NO_PUSH)
    _, _, fell, kept = _rollout(env, flailing, None, burn_in, 150)
    assert fell.sum() >= 4
    assert kept[fell].all()
    for t, j in zip(*np.nonzero(fell), strict=True):
        after = slice(t + 1, min(t + 1 + burn_in, len(fell)))
        assert not (kept[after, j] & ~fell[after, j]).any()
        if t + 1 + burn_in < len(fell) and not fell[t + 1 : t + 2 + burn_in, j].any():
            assert kept[t + 1 + burn_in, j]
