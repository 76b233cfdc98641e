"""Candidate checkpoints: run-folder checks, the convergence rule, --from-iter / --every."""

import re

import numpy as np
import pytest

from postconv.storage.checkpoints import (
    RunError,
    choose_candidates,
    converged_from,
    convergence,
    open_run,
    training_curve,
)


def make_run(tmp_path, iterations, rewards=None):
    """A run folder in Isaac Lab's layout. The model files are empty stand-ins: these tests
    choose checkpoints and never load them (loading is tested on real ones in tests/sim)."""
    run = tmp_path / "2026-01-01_00-00-00"
    (run / "params").mkdir(parents=True)
    (run / "params" / "agent.yaml").write_text(
        "actor:\n  activation: elu\n  std_range: !!python/tuple\n  - 1.0\n  - 2.0\n"
    )
    for i in iterations:
        (run / f"model_{i}.pt").write_bytes(b"")
    if rewards is not None:
        from torch.utils.tensorboard import SummaryWriter  # the writer rsl_rl logs with

        writer = SummaryWriter(log_dir=str(run))
        for step, value in rewards:
            writer.add_scalar("Train/mean_reward", value, step)
        writer.close()
    return run


def plateau_curve(n=400, knee=200, seed=0):
    rng = np.random.default_rng(seed)
    it = np.arange(n)
    clean = np.minimum(it / knee, 1.0) * 20.0
    return it, clean + rng.normal(0, 0.3, n)


def test_convergence_is_detected_near_the_knee_of_a_noisy_curve():
    it, v = plateau_curve()
    start = converged_from(it, v)
    assert 170 <= start <= 230


def test_a_curve_that_keeps_rising_converges_only_at_its_end():
    it = np.arange(100)
    assert converged_from(it, it * 1.0) >= 90


def test_a_flat_curve_has_converged_from_the_start():
    it = np.arange(50)
    assert converged_from(it, np.full(50, 3.0)) == 0


def test_convergence_rule_rejects_mismatched_curves():
    with pytest.raises(ValueError, match="matching, non-empty iterations and values"):
        converged_from(np.arange(3), np.arange(4))


def test_run_folder_errors_name_the_folder_and_the_fix(tmp_path):
    with pytest.raises(RunError, match="no such run folder"):
        open_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match=re.escape("no model_<iter>.pt checkpoints")):
        open_run(tmp_path / "empty")
    (tmp_path / "noparams").mkdir()
    (tmp_path / "noparams" / "model_0.pt").write_bytes(b"")
    with pytest.raises(RunError, match=re.escape("no params/agent.yaml")):
        open_run(tmp_path / "noparams")


def test_checkpoints_are_ordered_by_iteration_not_by_name(tmp_path):
    run = open_run(make_run(tmp_path, [100, 5, 50, 1000]))
    assert [c.iteration for c in run.checkpoints] == [5, 50, 100, 1000]
    assert run.agent_cfg["actor"]["std_range"] == [1.0, 2.0]  # Isaac Lab's tuple tags read safely


def test_candidates_after_convergence_from_the_tensorboard_curve(tmp_path):
    it, v = plateau_curve()
    run = open_run(make_run(tmp_path, range(0, 400, 50), rewards=zip(it.tolist(), v.tolist(), strict=True)))
    steps, values = training_curve(run)
    assert steps.tolist() == it.tolist()
    np.testing.assert_allclose(values, v, rtol=1e-6)  # stored as float32
    chosen, reason, _ = choose_candidates(run)
    assert [c.iteration for c in chosen] == [i for i in range(0, 400, 50) if i >= converged_from(it, v)]
    assert "after convergence" in reason


def test_from_iter_and_every_override_the_rule(tmp_path):
    run = open_run(make_run(tmp_path, range(0, 1000, 50)))
    chosen, reason, _ = choose_candidates(run, from_iter=500, every=3)
    assert [c.iteration for c in chosen] == [500, 650, 800, 950]
    assert reason.endswith("one in every 3")
    everything, why, _ = choose_candidates(run)
    assert len(everything) == 20
    assert "no Train/mean_reward curve" in why
    with pytest.raises(RunError, match="no checkpoint at or after iteration 5000"):
        choose_candidates(run, from_iter=5000)


@pytest.mark.parametrize("seed", range(20))
def test_convergence_rule_keeps_the_plateau_under_heavy_noise(seed):
    # noise at 10% of the curve's range: the rule must still find the knee, not the last point
    rng = np.random.default_rng(seed)
    it = np.arange(1500)
    v = np.minimum(it / 600, 1.0) * 20.0 + rng.normal(0, 2.0, it.size)
    assert converged_from(it, v) < 1000


def test_a_resumed_run_keeps_the_newer_sessions_value_for_an_iteration_logged_twice(tmp_path):
    import os

    from torch.utils.tensorboard import SummaryWriter

    run = make_run(tmp_path, [0, 10], rewards=[(0, 1.0), (1, 2.0), (2, 3.0)])  # the first session
    first = next(run.glob("events.out.tfevents.*"))
    # a copy that lost the times: the first session's file looks newest by mtime, not by its name
    started = int(first.name.split(".")[3])
    first.rename(first.with_name(first.name.replace(str(started), str(started - 100), 1)))
    os.utime(next(run.glob("events.out.tfevents.*")), (4e9, 4e9))
    writer = SummaryWriter(log_dir=str(run), filename_suffix=".resumed")  # the session that went on from 1
    for it, value in ((2, 30.0), (3, 40.0)):
        writer.add_scalar("Train/mean_reward", value, it)
    writer.close()
    steps, values = training_curve(open_run(run))
    assert steps.tolist() == [0, 1, 2, 3]
    assert values.tolist() == [1.0, 2.0, 30.0, 40.0]


@pytest.mark.parametrize(
    ("name", "values", "converged"),
    [
        ("falls only (the 30-iteration demo)", lambda it: -1.0 * it, False),
        ("still rising linearly", lambda it: 1.0 * it, False),
        (
            "still rising slowly at the end",
            lambda it: np.minimum(it / 300, 1.0) * 20 + 0.06 * np.maximum(it - 300, 0),
            False,
        ),
        ("a noisy plateau from half-way", lambda it: np.minimum(it / 200, 1.0) * 20.0, True),
        ("flat", lambda it: np.full(it.size, 3.0), True),
    ],
)
def test_a_run_still_rising_or_falling_at_its_end_is_not_converged(name, values, converged):
    it = np.arange(400)
    v = values(it) + np.random.default_rng(0).normal(0, 0.3, it.size)
    state = convergence(it, v)
    assert state.converged is converged, (name, state)
    assert ("not converged" in state.describe()) is not converged


@pytest.mark.parametrize("rho", [0.0, 0.98])
@pytest.mark.parametrize("seed", range(10))
def test_a_plateau_under_heavy_noise_is_converged(seed, rho):
    # noise at 10% of the range, white or correlated over ~50 iterations as a running mean of
    # episode returns is
    rng = np.random.default_rng(seed)
    noise = np.zeros(1500)
    shocks = rng.normal(0, 2.0 * np.sqrt(1 - rho**2), noise.size)
    for i in range(1, noise.size):
        noise[i] = rho * noise[i - 1] + shocks[i]
    it = np.arange(1500)
    assert convergence(it, np.minimum(it / 600, 1.0) * 20.0 + noise).converged


def test_a_run_that_never_converged_offers_its_last_fifth_and_says_so(tmp_path):
    it = np.arange(30)
    falling = zip(it.tolist(), (-1.0 * it).tolist(), strict=True)
    run = open_run(make_run(tmp_path, range(0, 30, 3), rewards=falling))
    chosen, reason, converged = choose_candidates(run)
    assert converged is False
    assert [c.iteration for c in chosen] == [15, 18, 21, 24, 27]  # 20% of 10 checkpoints, but at least 5
    assert reason.startswith("not converged: the reward fell by")
    assert reason.endswith(
        "the last 5 checkpoints instead (the last 20%, at least 5 where there are as many)"
    )


def test_the_report_flags_a_run_that_never_converged():
    from postconv.review.html_report import _candidates

    assert "color:#b35c00" in _candidates("not converged: the reward fell by 23% of its range ...")
    assert "color" not in _candidates("after convergence at iteration 850 (...)")
    assert _candidates(None) == ""


def test_a_reward_that_fell_to_its_plateau_converged_when_it_got_there_not_at_its_start():
    # the 30-iteration demo's shape: a drop, a slow slide, then flat
    it = np.arange(60)
    v = np.where(it < 30, -4.0 - 2.0 * it / 30, -6.0)
    assert 25 <= converged_from(it, v) <= 32
    assert converged_from(it, v, from_above=False) == 0  # the old rule, which the study keeps
    assert convergence(it, v).converged
