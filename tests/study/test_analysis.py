"""The study's scores and judgements: the worst case at k = 0 is the plain mean and falls with k,
binned and windowed variants keep their meaning, the bootstrap is paired over episodes and
its vectorized Spearman is scipy's, the baselines count what they say.

Samples are synthetic arrays shaped as the stage stores them: the arithmetic is tested here,
the simulators elsewhere.
"""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from postconv.selection import worst_case
from postconv.study.analysis import (
    VARIANTS,
    Variant,
    _regret1_rows,
    _spearman_rows,
    all_scores,
    baseline_scores,
    curve_at,
    judge,
    worst_case_scores,
)
from postconv.study.samples import SelectionSamples

TERMS = ("alive", "termination_penalty", "flat_orientation_l2")
FEATURES = ("projected_gravity.z", "base_height.z")


def _samples(C=4, S=2, T=100, m=3, seed=0, fall_every=None) -> SelectionSamples:
    rng = np.random.default_rng(seed)
    terms = np.zeros((C, S, T, m, len(TERMS)), dtype=np.float32)
    terms[..., 0] = 0.02
    terms[..., 2] = -0.01 * rng.random((C, S, T, m)) * (1 + np.arange(C))[:, None, None, None]
    terminated = np.zeros((C, S, T, m), dtype=bool)
    for c in range(C):
        if fall_every and fall_every[c]:
            terminated[c, :, :: fall_every[c]] = True
    terms[..., 1] = np.where(terminated, -4.0, 0.0)
    features = np.zeros((C, S, T, m, len(FEATURES)), dtype=np.float32)
    features[..., 0] = -1.0 + 0.05 * rng.random((C, S, T, m))
    features[..., 1] = 0.74 + 0.01 * rng.standard_normal((C, S, T, m))
    return SelectionSamples(
        names=tuple(f"model_{10 * (c + 1)}" for c in range(C)),
        iterations=np.arange(1, C + 1) * 10,
        scenarios=tuple(f"s{s}" for s in range(S)),
        terms=terms,
        term_names=TERMS,
        features=features,
        feature_names=FEATURES,
        terminated=terminated,
    )


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_every_variant_is_its_plain_mean_at_k0_and_never_rises_with_k(variant):
    samples = _samples(fall_every=(50, 25, 0, 10))
    values = worst_case_scores(samples, variant, (0.1, 1.0, 4.0))
    assert values.shape == (4, 4)
    assert np.all(np.diff(values, axis=1) <= 1e-9)
    if variant.bins is None and variant.psi == "reward" and variant.unit == "step":
        np.testing.assert_allclose(values[:, 0], samples.reward.reshape(4, -1).mean(axis=1), rtol=1e-6)


def test_window_samples_are_one_second_sums_of_one_env():
    samples = _samples(T=120)
    per_step = worst_case_scores(samples, Variant("s"), (1.0,))[:, 0]
    windowed = worst_case_scores(samples, Variant("w", unit="window"), (1.0,))[:, 0]
    # two whole windows of 50 steps fit in 120: the mean of a window sum is 50 x the mean step
    kept = samples.reward[:, :, :100].reshape(4, -1).mean(axis=1)
    np.testing.assert_allclose(windowed, 50 * kept, rtol=1e-6)
    assert not np.allclose(per_step * 50, windowed)


def test_episode_samples_are_the_stages_one_per_env_recording_per_scenario():
    samples = _samples(T=120, fall_every=(0, 30, 0, 0))
    values = worst_case_scores(samples, Variant("e", unit="episode"), (1.0,))
    # the stage's sample (postconv.storage.sample.per_unit): each env's mean over its steps
    means = samples.reward.mean(axis=2).reshape(4, -1)  # (C, S x m) trajectories
    np.testing.assert_allclose(values[:, 0], means.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(values[:, 1], worst_case(means, k=1.0).value, rtol=1e-5)


def test_the_worst_case_of_a_candidate_that_falls_sits_below_one_that_does_not():
    samples = _samples(fall_every=(0, 0, 20, 0))
    values = worst_case_scores(samples, VARIANTS[0], (0.5,))
    assert values[2, 1] == values[:, 1].min()


def test_baselines_count_falls_and_read_the_iteration():
    samples = _samples(fall_every=(0, 50, 25, 10))
    scores = baseline_scores(samples, None)
    falls = samples.terminated.reshape(4, -1).sum(axis=1)
    np.testing.assert_array_equal(scores["sim_falls"], -falls)
    assert falls[0] == 0
    assert falls[3] > falls[2] > falls[1] > 0
    np.testing.assert_array_equal(scores["iteration"], [10, 20, 30, 40])
    assert np.isnan(scores["train_reward"]).all()


def test_all_scores_names_every_baseline_and_radius():
    scores = all_scores(_samples(), np.arange(4.0), (VARIANTS[0],), (0.5, 2.0))
    assert set(scores) == {
        "iteration", "train_reward", "sim_falls", "mean", "wc[reward,k=0]", "wc[reward,k=0.5]", "wc[reward,k=2]"
    }  # fmt: skip
    np.testing.assert_allclose(scores["wc[reward,k=0]"], scores["mean"], rtol=1e-6)


def test_the_training_curve_is_averaged_over_the_iterations_before_each_checkpoint():
    curve = (np.arange(0, 100), np.arange(0, 100, dtype=float))
    np.testing.assert_allclose(curve_at(np.array([9, 50]), curve, window=10), [4.5, 45.5])
    assert curve_at(np.array([9]), None) is None


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 8), st.integers(1, 6), st.integers(0, 10_000))
def test_the_vectorized_spearman_is_scipys_row_by_row(c, b, seed):
    rng = np.random.default_rng(seed)
    score = rng.integers(0, 4, c).astype(float)  # ties on purpose
    outcomes = rng.integers(0, 5, (b, c)).astype(float)
    ours = _spearman_rows(score, outcomes)
    for row, value in zip(outcomes, ours, strict=True):
        if np.ptp(row) == 0 or np.ptp(score) == 0:
            assert np.isnan(value)
        else:
            assert value == pytest.approx(stats.spearmanr(score, row).statistic)


def test_top1_regret_averages_over_candidates_tied_at_the_top():
    outcomes = np.array([[0.2, 0.9, 0.5]])
    assert _regret1_rows(np.array([1.0, 1.0, 0.0]), outcomes)[0] == pytest.approx(0.9 - 0.55)
    assert _regret1_rows(np.array([0.0, 2.0, 1.0]), outcomes)[0] == 0.0


def test_a_perfect_score_is_judged_perfect_with_an_interval_around_it():
    rng = np.random.default_rng(0)
    rates = np.array([0.2, 0.4, 0.6, 0.8])
    episodes = (rng.random((4, 400)) < rates[:, None]).astype(float)
    j = judge(rates, episodes, n_boot=200)
    assert j.spearman == pytest.approx(1.0)
    assert j.regret1 == 0.0
    assert j.spearman_lo <= j.spearman <= j.spearman_hi
    reversed_ = judge(-rates, episodes, n_boot=200)
    assert reversed_.spearman == pytest.approx(-1.0)
    assert reversed_.regret1 > 0.5


def test_an_outcome_that_does_not_vary_judges_nothing():
    j = judge(np.arange(3.0), np.ones((3, 10)))
    assert np.isnan(j.spearman)
    assert np.isnan(j.regret1)


def test_shaping_leaves_out_the_alive_and_fall_terms():
    samples = _samples(fall_every=(0, 0, 5, 0))
    shaping = worst_case_scores(samples, Variant("s", psi="shaping"), (0.5,))
    np.testing.assert_allclose(shaping[:, 0], samples.terms[..., 2].reshape(4, -1).mean(axis=1), rtol=1e-6)


def test_every_variant_scores_samples_whose_settled_steps_differ_between_candidates():
    samples = _samples(T=120, fall_every=(0, 30, 0, 0))
    keep = np.ones_like(samples.terminated, dtype=bool)
    keep[0, :, :3] = False  # candidate 0's first steps unsettled: ragged per-step counts
    ragged = dataclasses.replace(samples, settled=keep)
    for variant in VARIANTS:
        values = worst_case_scores(ragged, variant, (1.0,))
        assert values.shape == (4, 2)
        assert np.isfinite(values).all(), variant.name
    episode = worst_case_scores(ragged, Variant("e", unit="episode"), (1.0,))
    means = np.stack([(samples.reward[c] * keep[c]).sum(axis=1) / keep[c].sum(axis=1) for c in range(4)])
    np.testing.assert_allclose(episode[:, 0], means.reshape(4, -1).mean(axis=1), rtol=1e-5)
