"""Agreement with real outcomes: correlations, tie-aware regret, choosing k."""

import itertools

import numpy as np
import pytest
from scipy import stats

from postconv.selection import agreement, best_k, kendall, regret_at, spearman


def test_perfect_and_reversed_predictions():
    real = np.array([1.0, 2.0, 3.0, 4.0])
    assert spearman(real * 10, real) == pytest.approx(1.0)
    assert kendall(-real, real) == pytest.approx(-1.0)
    a = agreement(real, real, at=(1, 2))
    assert a.regret == {1: 0.0, 2: 0.0}
    assert regret_at(-real, real, 1) == pytest.approx(3.0)


def test_correlations_handle_ties_like_scipy_and_constant_input_is_nan():
    pred = [1.0, 1.0, 2.0, 3.0, 3.0]
    real = [2.0, 1.0, 2.0, 5.0, 4.0]
    assert spearman(pred, real) == pytest.approx(stats.spearmanr(pred, real).statistic)
    assert kendall(pred, real) == pytest.approx(stats.kendalltau(pred, real).statistic)
    assert np.isnan(spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


@pytest.mark.parametrize("m", [1, 2, 3])
def test_regret_with_ties_is_the_exact_expectation_over_tie_breaks(m):
    pred = np.array([5.0, 5.0, 5.0, 1.0, 5.0])
    real = np.array([1.0, 7.0, 3.0, 9.0, 2.0])
    tied = np.flatnonzero(pred == 5.0)
    # brute force: every equally likely choice of m among the tied top
    choices = list(itertools.combinations(tied, m))
    expected = np.mean([real.max() - real[list(c)].max() for c in choices])
    assert regret_at(pred, real, m) == pytest.approx(expected, rel=1e-12)


def test_best_k_finds_the_radius_that_orders_outcomes():
    rng = np.random.default_rng(0)
    real = rng.normal(size=8)
    values = np.stack([rng.normal(size=8), real + rng.normal(0, 0.05, 8), rng.normal(size=8)], axis=1)
    choice = best_k(values, real, ks=[0.5, 2.0, 6.0])
    assert choice.k == 2.0
    assert choice.stability == 1.0
    assert choice.score[1] == pytest.approx(spearman(values[:, 1], real))
    assert choice.loo_choice.shape == (8,)


def test_best_k_with_regret_metric_reports_regret_not_its_negative():
    real = np.array([1.0, 2.0, 3.0, 4.0])
    values = np.stack([real, -real], axis=1)
    choice = best_k(values, real, ks=[1.0, 3.0], metric="regret")
    assert choice.k == 1.0
    assert choice.score.tolist() == [0.0, 3.0]


def test_best_k_ignores_folds_whose_outcomes_all_tie():
    values = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    choice = best_k(values, [1.0, 1.0, 2.0], ks=[1.0, 4.0])
    assert choice.k == 1.0
    assert np.isnan(choice.loo_choice[2])  # leaving out the 2 leaves two equal outcomes
    assert choice.stability == 1.0  # both informative folds chose k = 1
    with pytest.raises(ValueError, match="do not vary enough"):
        best_k(values, [1.0, 1.0, 1.0], ks=[1.0, 4.0])


def test_radii_that_rank_alike_split_each_folds_vote_and_are_called_tied():
    # three checkpoints whose worst cases order alike at every k: no radius predicts better
    values = np.array([[1.0, 1.5, 2.0], [2.0, 2.5, 3.0], [3.0, 3.5, 4.0]])
    choice = best_k(values, [0.2, 0.5, 0.9], ks=[1.0, 2.0, 4.0])
    assert choice.tied
    assert choice.stability == pytest.approx(1 / 3)  # not 100% for the first radius
    apart = best_k(np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]]), [1.0, 2.0, 3.0], ks=[1.0, 4.0])
    assert not apart.tied
    assert (apart.k, apart.stability) == (1.0, 1.0)
