"""Shared quantile bins: the same bins for every checkpoint, exact per-bin q and psi."""

import numpy as np
import pytest

from postconv.selection import discretize, quantile_edges, worst_case
from postconv.selection.discretize import stack


def test_bins_are_shared_across_checkpoints_and_rows_sum_to_one():
    rng = np.random.default_rng(0)
    psi = [rng.normal(0, 1, 500), rng.normal(2, 1, 300)]  # ragged
    bins = discretize(psi, bins=8)
    assert bins.q.shape == bins.psi.shape == (2, 8)
    np.testing.assert_allclose(bins.q.sum(axis=1), 1.0)
    # pooled quantile edges: the shifted checkpoint sits mostly in the upper bins
    assert bins.q[1, 4:].sum() > bins.q[0, 4:].sum()
    assert bins.count.sum() == 800


def test_per_bin_psi_is_the_mean_of_its_samples_and_the_binned_mean_is_exact():
    rng = np.random.default_rng(1)
    psi = rng.normal(size=(3, 400))
    bins = discretize(psi, bins=5)
    for i in range(3):
        idx = np.searchsorted(bins.edges[0], psi[i], side="right")
        for j in range(5):
            if bins.count[i, j]:
                assert bins.psi[i, j] == pytest.approx(psi[i][idx == j].mean())
    # the mean over bins equals the sample mean: binning loses nothing at k = 0
    np.testing.assert_allclose((bins.q * bins.psi).sum(1), psi.mean(1))
    np.testing.assert_allclose(worst_case(bins.psi, bins.q, k=0.0).value, psi.mean(1))


def test_binning_on_feature_columns_makes_a_product_grid():
    rng = np.random.default_rng(2)
    psi = rng.normal(size=(2, 600))
    features = rng.normal(size=(2, 600, 3))
    bins = discretize(psi, features, on=("psi", 2), bins=(4, 3))
    assert bins.q.shape == (2, 12)
    assert bins.columns == ("psi", 2)
    np.testing.assert_allclose(bins.q.sum(1), 1.0)


def test_given_edges_bin_new_checkpoints_like_earlier_ones():
    rng = np.random.default_rng(3)
    first = discretize(rng.normal(size=(2, 300)), bins=6)
    later = discretize(rng.normal(size=(1, 300)) + 5, edges=first.edges)
    assert later.edges[0].tolist() == first.edges[0].tolist()
    assert later.q[0, -1] > 0.9  # far above the old edges: nearly all in the top bin


def test_empty_bins_are_outside_the_support():
    psi = np.array([[0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 5.0, 6.0]])
    bins = discretize(psi, bins=4)  # pooled edges 1 and 5: row 1 fills only the top bin
    assert bins.q[1].tolist() == [0.0, 0.0, 1.0]
    assert bins.psi[1, 2] == 5.25
    r = worst_case(bins.psi, bins.q, k=50.0)
    np.testing.assert_allclose(r.value, [0.0, 5.25])  # minimum over occupied bins only


def test_quantile_edges_merge_repeated_values():
    values = np.r_[np.zeros(50), np.arange(1.0, 51.0)]  # a term that is half the time exactly 0
    edges = quantile_edges(values, 4)  # the 25% and 50% quantiles are both the atom at 0
    assert edges.tolist() == [25.0]
    assert quantile_edges(np.zeros(10), 4).size == 0  # a constant term: one bin


def test_stack_pads_ragged_checkpoints_with_zero_weight():
    psi, weights = stack([np.array([1.0, 2.0, 3.0]), np.array([10.0])])
    assert psi.shape == weights.shape == (2, 3)
    r = worst_case(psi, weights, k=0.0)
    np.testing.assert_allclose(r.value, [2.0, 10.0])
    same, none = stack([np.array([1.0, 2.0]), np.array([3.0, 4.0])])
    assert none is None
    assert same.shape == (2, 2)


def test_every_bin_of_quantile_edges_holds_pooled_samples():
    values = np.array([0.0, 0.0, 10.0, 10.0, 3.0, 7.0, 7.0, 1.0])
    edges = quantile_edges(values, 4)
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
    assert np.all(counts > 0)
