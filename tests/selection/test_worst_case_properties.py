"""Invariants every worst-case estimate must satisfy, checked on generated problems."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from postconv.selection import worst_case
from postconv.selection.estimators import INTERIOR, MEAN, MINIMUM

DIVERGENCES = ["kl", "chi2"]


def divergence_of(rho: np.ndarray, q: np.ndarray, divergence: str) -> float:
    support = q > 0
    r, qq = rho[support], q[support]
    if divergence == "kl":
        pos = r > 0
        return float(np.sum(r[pos] * np.log(r[pos] / qq[pos])))
    return float(0.5 * np.sum((r - qq) ** 2 / qq))


samples = hnp.arrays(
    np.float64,
    st.integers(1, 40),
    elements=st.floats(-100, 100, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 3)),
)
radius = st.floats(0.0, 8.0, allow_nan=False)
settings.register_profile("postconv", max_examples=60, deadline=None)
settings.load_profile("postconv")


@pytest.mark.parametrize("divergence", DIVERGENCES)
@given(psi=samples)
def test_zero_radius_gives_the_mean(divergence, psi):
    r = worst_case(psi, k=0.0, divergence=divergence)
    assert r.value == pytest.approx(psi.mean(), abs=1e-9 * (1 + np.abs(psi).max()))
    np.testing.assert_allclose(r.weights, np.full(psi.size, 1 / psi.size))


@pytest.mark.parametrize("divergence", DIVERGENCES)
@given(psi=samples, ks=st.lists(radius, min_size=2, max_size=6))
def test_value_is_non_increasing_in_k_and_between_min_and_mean(divergence, psi, ks):
    ks = sorted(ks)
    v = worst_case(psi, k=ks, divergence=divergence).value
    tol = 1e-9 * (1 + np.abs(psi).max())
    assert np.all(np.diff(v) <= tol)
    assert np.all(v >= psi.min() - tol)
    assert np.all(v <= psi.mean() + tol)


@pytest.mark.parametrize("divergence", DIVERGENCES)
@given(psi=samples, k=radius, shift=st.floats(-1e3, 1e3), scale=st.floats(1e-2, 1e2))
def test_shift_and_scale_equivariance(divergence, psi, k, shift, scale):
    base = worst_case(psi, k=k, divergence=divergence).value
    moved = worst_case(scale * psi + shift, k=k, divergence=divergence).value
    assert moved == pytest.approx(
        scale * base + shift, abs=1e-8 * (abs(shift) + scale * (1 + np.abs(psi).max()))
    )


@pytest.mark.parametrize("divergence", DIVERGENCES)
@given(psi=samples, k=radius, seed=st.integers(0, 2**16))
def test_permutation_invariance(divergence, psi, k, seed):
    perm = np.random.default_rng(seed).permutation(psi.size)
    a = worst_case(psi, k=k, divergence=divergence)
    b = worst_case(psi[perm], k=k, divergence=divergence)
    assert b.value == pytest.approx(a.value, abs=1e-10 * (1 + np.abs(psi).max()))
    np.testing.assert_allclose(b.weights, a.weights[perm], atol=1e-9)


@pytest.mark.parametrize("divergence", DIVERGENCES)
@given(
    psi=samples,
    k=radius,
    # weights spanning six orders of magnitude, and exact zeros (atoms off the support)
    raw_weights=hnp.arrays(np.float64, 40, elements=st.one_of(st.just(0.0), st.floats(1e-6, 1.0))),
)
def test_weights_are_a_distribution_in_the_ball_that_attains_the_value(divergence, psi, k, raw_weights):
    q = raw_weights[: psi.size]
    if q.sum() <= 0:
        q = np.ones(psi.size)
    r = worst_case(psi, q, k=k, divergence=divergence)
    rho = r.weights
    qn = q / q.sum()
    scale = 1 + np.abs(psi).max()
    assert np.all(rho >= 0)
    assert rho.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(rho[qn == 0] == 0), "mass outside the support"
    assert divergence_of(rho, qn, divergence) <= k + 1e-7
    assert float(rho @ psi) == pytest.approx(float(r.value), abs=1e-8 * scale)


@pytest.mark.parametrize("divergence", DIVERGENCES)
@given(psi=samples, k=radius)
def test_cost_sense_is_the_reward_problem_mirrored(divergence, psi, k):
    cost = worst_case(psi, k=k, divergence=divergence, sense="cost")
    reward = worst_case(-psi, k=k, divergence=divergence)
    assert cost.value == pytest.approx(-reward.value, abs=1e-10 * (1 + np.abs(psi).max()))
    assert cost.value >= psi.mean() - 1e-9 * (1 + np.abs(psi).max())
    np.testing.assert_allclose(cost.weights, reward.weights, atol=1e-12)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_batched_rows_equal_single_solves(divergence):
    rng = np.random.default_rng(3)
    psi = rng.normal(size=(5, 300)) * rng.random((5, 1)) * 4
    ks = [0.1, 1.0, 3.0]
    batch = worst_case(psi, k=ks, divergence=divergence)
    assert batch.value.shape == (5, 3)
    for i in range(5):
        np.testing.assert_allclose(
            batch.value[i], worst_case(psi[i], k=ks, divergence=divergence).value, atol=1e-12
        )


@pytest.mark.parametrize(
    ("psi_shape", "k", "value_shape", "weights_shape"),
    [
        ((7,), 1.0, (), (7,)),
        ((7,), [1.0, 2.0], (2,), (2, 7)),
        ((3, 7), 1.0, (3,), (3, 7)),
        ((3, 7), [1.0], (3, 1), (3, 1, 7)),
    ],
)
def test_output_shapes_follow_the_inputs(psi_shape, k, value_shape, weights_shape):
    psi = np.random.default_rng(0).normal(size=psi_shape)
    r = worst_case(psi, k=k)
    assert np.shape(r.value) == np.shape(r.multiplier) == np.shape(r.status) == value_shape
    assert r.weights.shape == weights_shape
    assert np.shape(r.mean) == psi_shape[:-1]


# ---- exact edge cases ------------------------------------------------------------------


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_single_atom_is_its_own_worst_case(divergence):
    r = worst_case([3.5], k=[0.0, 1.0, 100.0], divergence=divergence)
    np.testing.assert_array_equal(r.value, [3.5, 3.5, 3.5])
    np.testing.assert_array_equal(r.weights, np.ones((3, 1)))


def test_kl_reaches_the_minimum_exactly_at_minus_log_of_its_mass():
    psi = np.array([0.0, 0.0, 1.0, 2.0, 5.0, 5.0, 5.0, 9.0])  # argmin holds mass 2/8
    threshold = -np.log(2 / 8)
    below, at = worst_case(psi, k=[threshold * 0.999, threshold], divergence="kl").value
    assert below > 0.0
    assert at == 0.0
    r = worst_case(psi, k=threshold + 1, divergence="kl")
    assert r.status == MINIMUM
    assert r.multiplier == 0.0
    np.testing.assert_allclose(r.weights, [0.5, 0.5, 0, 0, 0, 0, 0, 0])


def test_chi2_reaches_the_minimum_exactly_when_one_plus_2k_times_its_mass_is_one():
    psi = np.array([1.0, 1.0, 2.0, 4.0])  # argmin mass 1/2: (1 + 2k) / 2 >= 1 iff k >= 1/2
    below, at = worst_case(psi, k=[0.49, 0.5], divergence="chi2").value
    assert below > 1.0
    assert at == 1.0


def test_chi2_equals_mean_minus_sqrt_2k_var_while_no_atom_is_dropped():
    psi = np.array([0.0, 1.0, 2.0, 3.0])
    k = 0.05  # eta* = mean + sd / sqrt(2k) = 1.5 + 1.118 / 0.316 > max
    r = worst_case(psi, k=k, divergence="chi2")
    assert r.value == pytest.approx(psi.mean() - np.sqrt(2 * k * psi.var()), rel=1e-14)
    assert np.all(r.weights > 0)


def test_constant_psi_is_its_value_for_every_k():
    for divergence in DIVERGENCES:
        r = worst_case(np.full((2, 9), -4.0), k=[0.0, 0.3, 50.0], divergence=divergence)
        np.testing.assert_array_equal(r.value, -4.0)


def test_kl_matches_the_gaussian_closed_form_for_two_point_symmetric_data():
    # For psi = +-1 with equal mass, the KL worst case is the tilt with
    # KL = log 2 - H(p): value = 1 - 2p, p in (1/2, 1) solving log 2 + p log p + (1-p) log(1-p) = k.
    from scipy.optimize import brentq

    k = 0.2
    p = brentq(lambda p: np.log(2) + p * np.log(p) + (1 - p) * np.log(1 - p) - k, 0.5 + 1e-12, 1 - 1e-12)
    r = worst_case(np.array([-1.0, 1.0]), k=k, divergence="kl")
    assert r.value == pytest.approx(1 - 2 * p, abs=1e-12)
    assert r.status == INTERIOR


def test_zero_weight_atoms_never_carry_mass():
    psi = np.array([-100.0, 0.0, 1.0, 2.0])
    q = np.array([0.0, 1.0, 1.0, 1.0])
    for divergence in DIVERGENCES:
        r = worst_case(psi, q, k=[0.1, 50.0], divergence=divergence)
        assert np.all(r.weights[:, 0] == 0)
        assert r.value[-1] == 0.0  # the minimum over the support, not over all atoms


def test_status_codes_mark_the_closed_forms():
    r = worst_case(np.arange(10.0), k=[0.0, 1.0, 100.0])
    assert r.status.tolist() == [MEAN, INTERIOR, MINIMUM]
    assert np.isinf(r.multiplier[0])
    assert r.multiplier[1] > 0
    assert r.multiplier[2] == 0


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_float32_and_float64_inputs_agree(divergence):
    rng = np.random.default_rng(5)
    psi = (rng.normal(size=(4, 200_000)) - rng.exponential(size=(4, 200_000))).astype(np.float32)
    ks = [0.5, 2.0, 6.0]
    single = worst_case(torch.from_numpy(psi), k=ks, divergence=divergence).value
    double = worst_case(psi.astype(np.float64), k=ks, divergence=divergence).value
    np.testing.assert_allclose(single, double, atol=2e-5 * np.ptp(psi))


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("weighted", [False, True])
def test_float32_values_are_lower_bounds_within_1e6_relative_on_falls_heavy_samples(divergence, weighted):
    # stage-like psi: a small per-step reward and falls at -4, more falls for later rows; big
    # enough (10 x 12,000 x 5 radii) for the streaming float32 path, not the small float64 one
    rng = np.random.default_rng(3)
    psi = 0.02 + 0.005 * rng.standard_normal((10, 12_000))
    for b in range(10):
        psi[b, rng.random(12_000) < 0.002 * (b + 1)] = -4.0
    psi = psi.astype(np.float32)
    weights = rng.random(12_000) if weighted else None
    ks = [0.0, 0.5, 1.0, 2.0, 4.0, 6.0]  # k = 0: the mean, also summed in float64
    single = worst_case(torch.from_numpy(psi), weights=weights, k=ks, divergence=divergence).value
    # the same numbers in float64 (weights too: float32 ones are rounded by ~6e-8 relative)
    w64 = None if weights is None else weights.astype(np.float32).astype(np.float64)
    double = worst_case(psi.astype(np.float64), weights=w64, k=ks, divergence=divergence).value
    scale = np.ptp(psi)
    # certified lower bounds; weights are held in float32 beside float32 samples, and their
    # rounding (~6e-8 relative per weight) moves the problem itself by about 1e-9
    slack = 1e-8 if weighted else 1e-12
    assert np.all(single <= double + slack * scale), np.max(single - double)
    np.testing.assert_allclose(single, double, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_warm_started_large_problem_matches_its_dual_certificate(divergence):
    # n above the warm-start threshold; the returned tilt must attain the value and sit on the ball
    rng = np.random.default_rng(11)
    psi = rng.normal(size=(2, 200_000)) - rng.exponential(size=(2, 200_000))
    r = worst_case(psi, k=[1.0, 4.0], divergence=divergence)
    rho = r.weights
    for i in range(2):
        for j, k in enumerate([1.0, 4.0]):
            assert float(rho[i, j] @ psi[i]) == pytest.approx(r.value[i, j], abs=1e-9)
            assert divergence_of(
                rho[i, j], np.full(psi.shape[1], 1 / psi.shape[1]), divergence
            ) == pytest.approx(k, rel=1e-6)


@pytest.mark.parametrize("n", [1_000, 300_000])  # the small (numpy) and the streaming (torch) paths
@pytest.mark.parametrize("k", [2e-14, 1e-12, 1e-8, 1e-4])
def test_float32_kl_stays_accurate_at_tiny_radii(n, k):
    psi = np.random.default_rng(0).normal(size=n)
    double = float(worst_case(psi, k=k).value)
    single = float(worst_case(torch.from_numpy(psi.astype(np.float32)), k=k).value)
    assert abs(single - double) <= 2e-6 * np.ptp(psi)
    assert single <= psi.mean() + 2e-6 * np.ptp(psi)


@pytest.mark.parametrize(
    ("seed", "row", "below_edge"), [(2, 0, 1e-3), (2, 0, 1e-5), (3, 1, 1e-2), (8, 2, 1e-3)]
)
def test_kl_converges_on_weighted_float32_batches_just_inside_the_balls_edge(seed, row, below_edge):
    # a bootstrap replicate of stage-like samples: falls at -4 on ~0.2% of steps, Poisson
    # counts as weights, k just below -log of the replicate's fall mass, where the dual is
    # ill-conditioned; 4 x 300,000 so the solver streams in chunks. These exact cases raised
    # SolverError while a row's chunked float32 sums changed with its neighbours' progress.
    rng = np.random.default_rng(seed)
    psi = (0.02 + 0.005 * rng.standard_normal((4, 300_000))).astype(np.float32)
    psi[rng.random(psi.shape) < 0.002] = -4.0
    counts = rng.poisson(1.0, size=psi.shape).astype(np.float32)
    q = counts.astype(np.float64) / counts.sum(1, keepdims=True)
    k = float(-np.log(q[row][psi[row] == -4.0].sum()) - below_edge)
    single = worst_case(torch.from_numpy(psi), weights=counts, k=k).value
    double = worst_case(psi.astype(np.float64), weights=counts.astype(np.float64), k=k).value
    assert np.all(single <= double + 1e-8 * np.ptp(psi))
    np.testing.assert_allclose(single, double, rtol=0, atol=1e-6 * np.ptp(psi))


@pytest.mark.parametrize("weighted", [False, True])
def test_float32_chi2_converges_at_large_radii_where_the_root_nears_the_top_sample(weighted):
    # stage-like psi, k from 15 up to just inside the edge ((1 + 2k) x the fall mass = 1 at
    # k ~ 250): the threshold eta sits within float32 steps of the top sample, where the
    # neighbouring float32 eta both missed the tolerance and every such solve raised
    rng = np.random.default_rng(0)
    psi = (0.02 + 0.005 * rng.standard_normal((10, 20_000))).astype(np.float32)
    psi[rng.random(psi.shape) < 0.002] = -4.0
    weights = rng.random(psi.shape).astype(np.float32) if weighted else None
    ks = [15.0, 20.0, 50.0, 100.0, 200.0]
    single = worst_case(torch.from_numpy(psi), weights=weights, k=ks, divergence="chi2").value
    w64 = None if weights is None else weights.astype(np.float64)
    double = worst_case(psi.astype(np.float64), weights=w64, k=ks, divergence="chi2").value
    slack = 1e-8 if weighted else 1e-12  # float32 weights: their own rounding moves the problem
    assert np.all(single <= double + slack * np.ptp(psi))
    np.testing.assert_allclose(single, double, rtol=0, atol=(1e-7 if weighted else 1e-9) * np.ptp(psi))
