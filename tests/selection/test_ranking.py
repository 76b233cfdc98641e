"""Rankings by worst case with mean tie-breaks, and the group bootstrap."""

import re

import numpy as np
import pytest

from postconv.selection import bootstrap, rank, share_beating, worst_case


def test_worst_case_can_reverse_the_mean_ranking():
    rng = np.random.default_rng(0)
    steady = rng.normal(1.0, 0.1, 4000)  # lower mean, no bad tail
    risky = np.where(rng.random(4000) < 0.05, -8.0, 1.6) + rng.normal(0, 0.1, 4000)  # higher mean, falls
    r = rank(worst_case(np.stack([steady, risky]), k=[0.0, 2.0]))
    assert risky.mean() > steady.mean()
    assert r.mean_rank.tolist() == [2, 1]
    assert r.rank[:, 0].tolist() == [2, 1]  # k = 0 is the mean
    assert r.rank[:, 1].tolist() == [1, 2]  # the worst case prefers the steady policy
    assert r.best.tolist() == [1, 0]


def test_ties_in_value_are_broken_by_the_mean_then_by_index():
    value = np.array([1.0, 1.0, 0.5, 1.0])
    mean = np.array([2.0, 3.0, 9.0, 2.0])
    r = rank(value, mean)
    assert r.order[0].tolist() == [1, 0, 3, 2]
    assert r.rank[:, 0].tolist() == [2, 1, 4, 3]


def test_cost_sense_ranks_small_first():
    r = rank(worst_case(np.array([[3.0, 3.1], [1.0, 1.2]]), k=0.5, sense="cost"))
    assert r.rank[:, 0].tolist() == [2, 1]


@pytest.mark.parametrize("paired", [True, False])
def test_bootstrap_intervals_cover_the_estimate_and_p_best_sums_to_one(paired):
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(40), 25)  # 40 episodes of 25 steps
    episode_effect = rng.normal(0, 1, (3, 40))[:, groups]
    psi = np.array([[0.0], [0.3], [1.5]]) + episode_effect + rng.normal(0, 0.3, (3, 1000))
    ks = [0.5, 2.0]
    point = worst_case(psi, k=ks).value
    bs = bootstrap(psi, groups, k=ks, n_boot=100, paired=paired, seed=4)
    assert bs.replicates.shape == (100, 3, 2)
    assert np.all(bs.value_low <= point + 1e-12)
    assert np.all(point <= bs.value_high + 1e-12)
    np.testing.assert_allclose(bs.p_best.sum(axis=0), 1.0)
    assert bs.p_best[2].min() > 0.9  # the clearly best checkpoint
    assert bs.p_best_mean.sum() == pytest.approx(1.0)


def test_group_bootstrap_is_wider_than_a_step_bootstrap_under_correlation():
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(20), 100)
    psi = rng.normal(0, 1, (1, 20))[:, groups] + rng.normal(0, 0.1, (1, 2000))
    by_episode = bootstrap(psi, groups, k=1.0, n_boot=200, seed=0)
    by_step = bootstrap(psi, np.arange(2000), k=1.0, n_boot=200, seed=0)
    width = lambda b: float(b.value_high[0, 0] - b.value_low[0, 0])  # noqa: E731
    assert width(by_episode) > 3 * width(by_step)


def test_bootstrap_is_reproducible_from_its_seed():
    rng = np.random.default_rng(3)
    psi = rng.normal(size=(2, 200))
    groups = np.repeat(np.arange(10), 20)
    a = bootstrap(psi, groups, k=1.0, n_boot=20, seed=9)
    b = bootstrap(psi, groups, k=1.0, n_boot=20, seed=9)
    np.testing.assert_array_equal(a.replicates, b.replicates)


def test_paired_resampling_treats_identical_checkpoints_identically():
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(30), 10)
    row = rng.normal(size=300)
    paired = bootstrap(np.stack([row, row]), groups, k=1.0, n_boot=50, paired=True)
    np.testing.assert_array_equal(paired.replicates[:, 0], paired.replicates[:, 1])
    np.testing.assert_allclose(paired.p_best[:, 0], [0.5, 0.5])  # every replicate a tie
    unpaired = bootstrap(np.stack([row, row]), groups, k=1.0, n_boot=50, paired=False)
    assert not np.array_equal(unpaired.replicates[:, 0], unpaired.replicates[:, 1])


@pytest.mark.parametrize("method", ["exact", "grouped"])
def test_paired_none_pairs_checkpoints_that_share_their_live_groups_and_no_others(method):
    rng = np.random.default_rng(7)
    groups = np.repeat(np.arange(30), 10)
    row = rng.normal(size=300)
    psi = np.stack([row, row])
    shared = np.ones_like(psi)
    shared[:, :10] = 0.0  # group 0 without weight in every checkpoint: still shared
    for labels in (groups, np.stack([groups, groups])):  # (n,), or (B, n) repeating it
        both = bootstrap(psi, labels, k=1.0, weights=shared, n_boot=30, paired=None, method=method)
        np.testing.assert_array_equal(both.replicates[:, 0], both.replicates[:, 1])
    ragged = shared.copy()
    ragged[1, 10:20] = 0.0  # group 1 only in checkpoint 0: each draws its own
    apart = bootstrap(psi, groups, k=1.0, weights=ragged, n_boot=30, paired=None, method=method)
    assert not np.array_equal(apart.replicates[:, 0], apart.replicates[:, 1])


def test_bootstrap_resamples_only_real_samples_of_ragged_checkpoints():
    from postconv.selection.discretize import stack

    rng = np.random.default_rng(6)
    long_run, short_run = rng.normal(size=200), rng.normal(size=3) + 1
    psi, weights = stack([long_run, short_run])
    groups = np.arange(psi.shape[1])  # every sample its own group; padding has zero weight
    result = bootstrap(psi, groups, k=0.5, weights=weights, n_boot=40, paired=False, seed=1)
    assert np.all(np.isfinite(result.replicates))
    assert result.value_low[1, 0] >= short_run.min() - 1e-12  # only the 3 real samples count
    with pytest.raises(
        ValueError, match="paired bootstrap needs every checkpoint to have samples of every group"
    ):
        bootstrap(psi, groups, k=0.5, weights=weights, n_boot=10, paired=True)


def test_beating_a_reference_is_complementary_and_the_reference_ties_itself():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(200, 4, 2))
    values[:, 1] = values[:, 3]  # a tie with the reference in every replicate
    share = share_beating(values, reference=3)
    np.testing.assert_allclose(share[3], 0.5)
    np.testing.assert_allclose(share[1], 0.5)
    for b in range(4):  # P(b beats ref) + P(ref beats b) = 1
        np.testing.assert_allclose(share[b] + share_beating(values, reference=b)[3], 1.0)
    np.testing.assert_allclose(share_beating(values, 3, sense="cost")[0], 1.0 - share[0])


def test_a_clearly_better_checkpoint_beats_the_reference_in_almost_every_paired_replicate():
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(40), 25)
    episode_effect = rng.normal(0, 1, 40)[groups]  # common random numbers: shared by both
    psi = np.stack([episode_effect + 0.5, episode_effect]) + rng.normal(0, 0.3, (2, 1000))
    bs = bootstrap(psi, groups, k=1.0, n_boot=200, paired=True, seed=0)
    assert share_beating(bs.replicates, reference=1)[0, 0] > 0.99
    assert bs.mean_replicates.shape == (200, 2)
    assert share_beating(bs.mean_replicates[..., None], reference=1)[0, 0] > 0.99


@pytest.mark.parametrize(
    ("shape", "reference", "message"),
    [((10, 3), 0, "values must be (replicates, checkpoints, radii)"), ((10, 3, 1), 3, "reference 3")],
)
def test_bad_reference_inputs_are_named(shape, reference, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        share_beating(np.zeros(shape), reference)


@pytest.mark.parametrize("method", ["exact", "grouped"])
def test_tensor_samples_labels_and_weights_resample_as_their_numpy_arrays(method):
    # samples made on a GPU arrive as tensors, their labels and weights read on the host (on
    # the CPU here: no GPU to test a CUDA tensor on)
    import torch

    rng = np.random.default_rng(4)
    psi = rng.normal(size=(3, 120))
    groups = np.repeat(np.arange(12), 10)
    weights = rng.uniform(0.5, 1.5, size=(3, 120))
    kwargs = {"k": [1.0, 2.0], "n_boot": 40, "seed": 3, "method": method}
    as_arrays = bootstrap(psi, groups, weights=weights, **kwargs)
    as_tensors = bootstrap(
        torch.as_tensor(psi), torch.as_tensor(groups), weights=torch.as_tensor(weights), **kwargs
    )
    np.testing.assert_array_equal(as_tensors.replicates, as_arrays.replicates)
    np.testing.assert_array_equal(as_tensors.p_best, as_arrays.p_best)
