"""Stepping checkpoints x episodes in a world: common random numbers, latency, delays, sensor
faults, pushes, falls, and results that do not depend on threads or on the batch's makeup.

The policies are small fakes (fixed actions that record what they saw) or random-weight
actors: the physics and the episode bookkeeping are what is tested, not a trained policy.
"""

import numpy as np
import pytest
import torch
from torch import nn

from postconv.evaluation.policy import DeterministicActor
from postconv.evaluation.rollout import GroupPolicy
from postconv.sim2sim.batch import WorldBatch, draw_episodes, substep_lags, thread_pool
from postconv.sim2sim.config import EpisodeSpec
from postconv.sim2sim.contract import TRAINING_NOISE, obs_slices
from postconv.sim2sim.worlds import POLICY_DT, Command, parse_world, world_model

S = obs_slices()


class Recorder:
    """A fake policy: returns ``action(t)`` for every env and keeps every observation it saw."""

    def __init__(self, action=lambda t: 0.2):
        self.action, self.seen = action, []

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        self.seen.append(obs.numpy().copy())
        return torch.full((obs.shape[0], 29), float(self.action(len(self.seen) - 1)))


def run(
    world_text: str, policy, checkpoints: int = 1, episodes: int = 3, seconds: float = 0.3, threads: int = 1
):
    world = parse_world(world_text)
    with thread_pool(threads) as pool:
        batch = WorldBatch(world_model(world), world, EpisodeSpec(episodes, seconds, seed=7), pool)
        return batch.run(policy, checkpoints)


@pytest.mark.parametrize(
    ("latency", "lags"), [(0, [0, 0, 0, 0]), (2, [1, 1, 0, 0]), (4, [1, 1, 1, 1]), (6, [2, 2, 1, 1])]
)
def test_latency_in_physics_steps_delays_each_substeps_target(latency, lags):
    assert substep_lags(latency) == lags


def test_one_policy_step_of_latency_equals_acting_one_step_later():
    late, early = Recorder(lambda t: 0.5), Recorder(lambda t: 0.0 if t == 0 else 0.5)
    run("latency=20ms", late)
    run("nominal", early)
    joints = S["joint_pos"]
    np.testing.assert_array_equal(np.array(late.seen)[:, :, joints], np.array(early.seen)[:, :, joints])
    on_time = Recorder(lambda t: 0.5)
    run("nominal", on_time)
    assert not np.array_equal(np.array(on_time.seen)[1:, :, joints], np.array(late.seen)[1:, :, joints])


def test_observation_delay_shows_the_previous_steps_state():
    delayed, fresh = Recorder(), Recorder()
    run("obs_delay=20ms", delayed)
    run("nominal", fresh)
    d, f = np.array(delayed.seen), np.array(fresh.seen)
    sensed = np.r_[0:9, 12:70]  # base velocities, gravity, joints: not the command or the last action
    current = np.setdiff1d(np.arange(99), sensed)
    np.testing.assert_array_equal(d[0], f[0])
    np.testing.assert_array_equal(d[1:, :, sensed], f[:-1, :, sensed])
    np.testing.assert_array_equal(d[:, :, current], f[:, :, current])


def test_noise_is_bounded_per_term_and_common_across_checkpoints():
    noisy, clean = Recorder(), Recorder()
    run("noise=2", noisy, checkpoints=2)
    run("nominal", clean, checkpoints=2)
    diff = np.array(noisy.seen) - np.array(
        clean.seen
    )  # (T, 2 * 3, 99): the same states, so only noise differs
    for name, sl in S.items():
        bound = 2 * TRAINING_NOISE.get(name, 0.0)
        assert np.abs(diff[:, :, sl]).max() <= bound * (1 + 1e-5) + 1e-6
        if bound:
            assert np.abs(diff[:, :, sl]).max() > 0.5 * bound
    np.testing.assert_allclose(diff[:, :3], diff[:, 3:], atol=1e-6)  # slot e of checkpoint 0 and 1 alike


def test_gyro_bias_is_constant_per_episode():
    biased, clean = Recorder(), Recorder()
    run("gyro_bias=0.1", biased)
    run("nominal", clean)
    gyro = (np.array(biased.seen, dtype=np.float64) - np.array(clean.seen, dtype=np.float64))[
        :, :, S["base_ang_vel"]
    ]
    np.testing.assert_allclose(gyro, np.broadcast_to(gyro[0], gyro.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(gyro, axis=-1), 0.1, atol=1e-5)


def test_encoder_bias_is_read_by_the_policy_and_the_motors():
    biased, clean = Recorder(), Recorder()
    run("encoder_bias=0.05", biased)
    run("nominal", clean)
    b, c = np.array(biased.seen, dtype=np.float64), np.array(clean.seen, dtype=np.float64)
    joints = S["joint_pos"]
    bias = b[0, :, joints] - c[0, :, joints]  # the same state at the start: only the reading differs
    assert 0.01 < np.abs(bias).max() <= 0.05
    np.testing.assert_array_equal(b[0, :, : joints.start], c[0, :, : joints.start])
    # the PD loops hold the biased reading on target, so the true joints move off it: by about the bias
    true_offset = (b[-1, :, joints] - bias) - c[-1, :, joints]
    assert np.abs(true_offset).max() > 0.2 * np.abs(bias).max()


def test_imu_tilt_rotates_the_gravity_seen_by_the_angle():
    tilted, clean = Recorder(), Recorder()
    run("tilt=5", tilted)
    run("nominal", clean)
    g_t, g_c = (
        np.array(tilted.seen)[:, :, S["projected_gravity"]],
        np.array(clean.seen)[:, :, S["projected_gravity"]],
    )
    np.testing.assert_allclose(np.linalg.norm(g_t, axis=-1), np.linalg.norm(g_c, axis=-1), rtol=1e-5)
    cos = (g_t * g_c).sum(-1) / np.linalg.norm(g_t, axis=-1) / np.linalg.norm(g_c, axis=-1)
    angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    # about a horizontal axis: the full angle while upright (the start), never more
    np.testing.assert_allclose(angle[0], 5.0, atol=1e-3)
    assert angle.max() <= 5.0 + 1e-3


def test_commands_reach_the_observation():
    walk = Recorder()
    run("command=walk:0.7", walk)
    np.testing.assert_allclose(
        np.array(walk.seen)[:, :, S["velocity_commands"]], np.broadcast_to([0.7, 0, 0], (15, 3, 3))
    )
    mixed = draw_episodes(parse_world("nominal"), EpisodeSpec(4, 12.0)).commands
    for axis, (lo, hi) in enumerate(Command.MIXED_RANGES):
        assert (lo <= mixed[:, :, axis]).all()
        assert (mixed[:, :, axis] <= hi).all()
    assert len(np.unique(mixed[0, :, 0])) == 3  # a new command every 5 s


def test_pushes_kick_at_the_drawn_steps_within_the_magnitude():
    world = parse_world("push=0.8@0.1-0.2")
    draws = draw_episodes(world, EpisodeSpec(3, 1.0, seed=7))
    steps = np.flatnonzero(np.abs(draws.push[0]).sum(-1))
    gaps = np.diff(steps) * POLICY_DT
    assert len(steps) >= 4
    assert gaps.min() >= 0.1 - 1e-9
    assert gaps.max() <= 0.2 + 1e-9
    assert np.abs(draws.push).max() <= 0.8
    pushed, calm = Recorder(), Recorder()
    run("push=0.8@0.1-0.2", pushed, seconds=0.5)
    run("nominal", calm, seconds=0.5)
    n = min(len(pushed.seen), len(calm.seen))
    differs = np.abs(np.array(pushed.seen[:n]) - np.array(calm.seen[:n]))[:, 0, S["base_lin_vel"]].max(-1) > 0
    assert np.flatnonzero(differs)[0] == steps[0] + 1  # the kick lands after its step


def test_standing_still_falls_and_the_fall_is_timed():
    out = run("nominal", Recorder(lambda t: 0.0), episodes=2, seconds=3.0)
    assert not out.survived.any()
    assert (out.time_to_fall < 3.0).all()
    assert (out.time_to_fall > 0.2).all()
    assert (out.tracking_return > 0).all()
    assert not out.unstable.any()


def test_a_fall_on_the_last_step_is_a_fall():
    first = run("nominal", Recorder(lambda t: 0.0), episodes=2, seconds=3.0)
    ends = run("nominal", Recorder(lambda t: 0.0), episodes=2, seconds=float(first.time_to_fall[0]))
    assert not ends.survived[0]
    assert ends.time_to_fall[0] == pytest.approx(first.time_to_fall[0])


def test_falling_early_costs_tracking_error():
    out = run("command=walk:0.5", Recorder(lambda t: 0.0), episodes=2, seconds=3.0)
    # after the fall every step errs by the whole command: the mean is near it, not near zero
    assert (out.lin_tracking_error > 0.5 * (1 - out.time_to_fall / 3.0)).all()


def test_diverging_physics_is_reported_not_fatal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warning log to the working directory
    out = run("strength=100000", Recorder(lambda t: 3.0), episodes=2, seconds=0.4)
    assert out.unstable.any()
    assert not out.survived[out.unstable].any()


def _actors(n: int) -> list[DeterministicActor]:
    torch.manual_seed(0)
    actors = []
    for _ in range(n):
        layers = [nn.Linear(99, 32), nn.Linear(32, 29)]
        with torch.no_grad():
            layers[-1].weight.mul_(0.05)
        actors.append(DeterministicActor(layers, "elu", None, None))
    return actors


def test_outcomes_do_not_depend_on_threads_or_batch_makeup():
    actors = _actors(2)
    both = run(
        "push=1@0.2-0.4", GroupPolicy(actors, 4, "cpu"), checkpoints=2, episodes=4, seconds=1.5, threads=1
    )
    threaded = run(
        "push=1@0.2-0.4", GroupPolicy(actors, 4, "cpu"), checkpoints=2, episodes=4, seconds=1.5, threads=2
    )
    alone = run("push=1@0.2-0.4", GroupPolicy(actors[1:], 4, "cpu"), checkpoints=1, episodes=4, seconds=1.5)
    for name in ("survived", "time_to_fall", "lin_tracking_error", "tracking_return"):
        np.testing.assert_array_equal(getattr(both, name), getattr(threaded, name))
        np.testing.assert_array_equal(getattr(both, name)[4:], getattr(alone, name))
    assert not np.array_equal(both.tracking_return[:4], both.tracking_return[4:])  # the two policies differ
