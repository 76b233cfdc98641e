"""The fast solver against cvxpy (the paper's conic route) on randomized problems.

cvxpy is the oracle only where it vouches for its answer (status optimal); the radii are
kept inside the interior regime, where the cone program is well posed.
"""

import numpy as np
import pytest

from postconv.selection import worst_case

# Relative to the spread of psi: cvxpy/Clarabel's own accuracy is about 1e-8 here.
RTOL = 1e-6


def _problem(seed: int, batch: int, n: int, weighted: bool):
    rng = np.random.default_rng(seed)
    # skewed, with a lower tail: the regime where worst case and mean disagree
    psi = rng.normal(size=(batch, n)) - rng.exponential(1.0, size=(batch, n)) * rng.random((batch, 1))
    weights = rng.random((batch, n)) + 0.05 if weighted else None
    return psi, weights


@pytest.mark.parametrize("divergence", ["kl", "chi2"])
@pytest.mark.parametrize("sense", ["reward", "cost"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_matches_cvxpy_on_random_batches(divergence, sense, weighted, seed):
    psi, weights = _problem(seed, batch=3, n=120, weighted=weighted)
    ks = [0.05, 0.5, 2.0]
    fast = worst_case(psi, weights, k=ks, divergence=divergence, sense=sense)
    ref = worst_case(psi, weights, k=ks, divergence=divergence, sense=sense, solver="cvxpy")
    scale = np.ptp(psi, axis=1, keepdims=True)
    np.testing.assert_array_less(np.abs(fast.value - ref.value) / scale, RTOL)
    np.testing.assert_allclose(fast.mean, ref.mean, rtol=1e-12)


@pytest.mark.parametrize("divergence", ["kl", "chi2"])
def test_fast_matches_cvxpy_with_ties_and_zero_weight_atoms(divergence):
    rng = np.random.default_rng(7)
    psi = np.round(rng.normal(size=(2, 80)), 1)  # many exact ties
    weights = rng.random((2, 80))
    weights[:, ::5] = 0.0  # atoms outside the support, some of them the row's minimum
    psi[:, 0] = -50.0
    fast = worst_case(psi, weights, k=[0.1, 1.0], divergence=divergence)
    ref = worst_case(psi, weights, k=[0.1, 1.0], divergence=divergence, solver="cvxpy")
    np.testing.assert_allclose(fast.value, ref.value, atol=RTOL * 10)
    assert np.all(fast.value > -50.0), "a zero-weight atom must not set the worst case"


@pytest.mark.parametrize("divergence", ["kl", "chi2"])
def test_cvxpy_returns_the_same_shapes_as_fast(divergence):
    psi, _ = _problem(3, batch=1, n=50, weighted=False)
    fast = worst_case(psi[0], k=1.0, divergence=divergence)
    ref = worst_case(psi[0], k=1.0, divergence=divergence, solver="cvxpy")
    assert np.shape(fast.value) == np.shape(ref.value) == ()
    assert abs(float(fast.value) - float(ref.value)) < RTOL * np.ptp(psi)
    assert ref.weights.shape == fast.weights.shape == (50,)
    assert float(ref.weights @ psi[0]) == pytest.approx(float(ref.value), abs=1e-7)
