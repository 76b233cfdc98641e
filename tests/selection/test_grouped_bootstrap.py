"""Selection at scale: the streamed solver equals the in-memory one, and the grouped bootstrap
(replicates from per-group sums) equals the per-sample bootstrap replicate by replicate,
drawn with the same groups, to its stated accuracy."""

import re
import warnings

import numpy as np
import pytest
import torch

from postconv.selection import bootstrap, worst_case
from postconv.selection import grouped as grouped_module
from postconv.selection import ranking as ranking_module
from postconv.selection.source import ArraySource, Chunk


def stage_like(b: int, groups: int, steps: int, seed: int, fall: float = 0.002) -> np.ndarray:
    """(b, steps * groups) float32 per-step rewards, env-major like the stage's samples:
    mostly 0.02 +- 0.005, a fall at -4 on ``fall`` of the steps, a per-checkpoint offset."""
    rng = np.random.default_rng(seed)
    psi = 0.02 + 0.005 * rng.standard_normal((b, steps * groups)) + 0.002 * rng.standard_normal((b, 1))
    psi[rng.random(psi.shape) < fall] = -4.0
    return psi.astype(np.float32)


def both(psi, groups, **kwargs):
    exact = bootstrap(psi, groups, method="exact", **kwargs)
    grouped = bootstrap(psi, groups, method="grouped", **kwargs)
    return exact, grouped


@pytest.mark.parametrize("divergence", ["kl", "chi2"])
@pytest.mark.parametrize("sense", ["reward", "cost"])
@pytest.mark.parametrize(("weighted", "paired"), [(False, True), (True, True), (True, False)])
def test_grouped_replicates_equal_the_per_sample_ones_on_stage_like_samples(
    divergence, sense, weighted, paired
):
    g, t = 256, 40
    psi = stage_like(4, g, t, seed=1)
    groups = np.tile(np.arange(g), t)
    weights = None
    if weighted:  # the burn-in steps after a respawn weigh 0, as in the stage
        weights = (np.random.default_rng(2).random(psi.shape) < 0.9).astype(np.float32)
        weights[:, :g] = 1.0
    exact, fast = both(psi, groups, k=[0.5, 2.0, 6.0], divergence=divergence, sense=sense, weights=weights,
                       n_boot=24, paired=paired, seed=3)  # fmt: skip
    scale = float(np.ptp(psi))
    np.testing.assert_allclose(fast.replicates, exact.replicates, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(fast.value_low, exact.value_low, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(fast.value_high, exact.value_high, rtol=0, atol=1e-5 * scale)
    np.testing.assert_array_equal(fast.p_best, exact.p_best)
    np.testing.assert_allclose(fast.mean_low, exact.mean_low, rtol=0, atol=1e-9 * scale)
    assert fast.grouped.max_gap <= 1e-3 * scale  # certified: every value within its bounds
    assert exact.grouped is None


def test_grouped_values_lie_within_their_certified_gap_of_the_exact_ones():
    g, t = 128, 30
    psi = stage_like(3, g, t, seed=4)
    groups = np.tile(np.arange(g), t)
    exact, fast = both(psi, groups, k=[1.0, 4.0], n_boot=20, seed=0)
    assert np.abs(fast.replicates - exact.replicates).max() <= fast.grouped.max_gap + 1e-6 * np.ptp(psi)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_few_groups_near_the_balls_edge_keep_p_best_and_the_intervals(seed):
    # 48 episodes, falls on a few: replicates differ wildly (some draw no fall, some many),
    # their optima scatter orders of magnitude from the full sample's and some cross the
    # ball's edge. What the grid cannot certify is solved over the samples.
    g = 48
    psi = stage_like(3, g, 20, seed=seed, fall=0.01)
    groups = np.tile(np.arange(g), 20)
    exact, fast = both(psi, groups, k=[0.5, 2.0, 4.0, 6.0], n_boot=40, seed=seed)
    np.testing.assert_array_equal(fast.p_best, exact.p_best)
    spread = np.subtract(*np.quantile(exact.replicates, [0.75, 0.25], axis=0))
    assert np.all(np.abs(fast.replicates - exact.replicates) <= 2e-3 * spread + 1e-5 * np.ptp(psi))


def test_a_group_without_weight_in_one_checkpoint_resamples_on_the_grid():
    # ragged sets (a checkpoint with no samples in some group) are resampled unpaired; the
    # empty group's sums are 0 and must stay out of the replicates' sums (not inf * 0)
    g, t = 128, 30
    psi = stage_like(3, g, t, seed=9, fall=0.0)  # no falls: every replicate settles on the grid
    groups = np.tile(np.arange(g), t)
    weights = np.ones_like(psi)
    weights[1, groups == 5] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # inf * 0 warns
        exact, fast = both(psi, groups, k=[1.0, 4.0], weights=weights, n_boot=20, paired=False, seed=2)
    assert fast.grouped.solved_exactly == 0
    np.testing.assert_allclose(fast.replicates, exact.replicates, rtol=0, atol=1e-5 * np.ptp(psi))


@pytest.mark.parametrize("k", [[0.004, 1.0], [0.0]])
def test_radii_below_float32s_reach_and_k_zero_alone_are_resampled_exactly(k):
    g = 128
    psi = stage_like(2, g, 30, seed=11)
    groups = np.tile(np.arange(g), 30)
    exact, fast = both(psi, groups, k=k, n_boot=16, seed=5)
    np.testing.assert_allclose(fast.replicates, exact.replicates, rtol=0, atol=1e-6 * np.ptp(psi))


def test_the_crash_case_of_issue_15_completes_by_group():
    # rare falls with k = 6 near -log of the fall mass: a replicate's reweighting moves the
    # fall mass across the ball's edge (the per-sample bootstrap once died here)
    psi = stage_like(5, 1024, 100, seed=7)
    groups = np.tile(np.arange(1024), 100)
    result = bootstrap(psi, groups, k=[1, 2, 4, 6], n_boot=50, method="grouped")
    assert np.isfinite(result.replicates).all()
    assert np.all(result.value_low <= result.value_high)
    np.testing.assert_allclose(result.p_best.sum(0), 1.0)


def test_auto_resamples_per_sample_when_small_and_by_group_when_large(monkeypatch):
    psi = stage_like(2, 32, 10, seed=0)
    groups = np.tile(np.arange(32), 10)
    assert bootstrap(psi, groups, k=2.0, n_boot=10).grouped is None
    monkeypatch.setattr(ranking_module, "EXACT_WORK", 10 * 2 * 320 - 1)
    assert bootstrap(psi, groups, k=2.0, n_boot=10).grouped is not None


def test_grouped_bootstrap_of_a_source_equals_that_of_its_arrays():
    g = 64
    psi = stage_like(3, g, 25, seed=5)
    groups = np.tile(np.arange(g), 25)
    source = ArraySource(psi, groups=groups, columns=1000)  # chunks cut groups' runs anywhere
    from_source = bootstrap(source, k=[1.0, 2.0], n_boot=15, seed=8)
    from_arrays = bootstrap(psi, groups, k=[1.0, 2.0], n_boot=15, seed=8, method="grouped")
    np.testing.assert_allclose(from_source.replicates, from_arrays.replicates, rtol=0, atol=1e-6)


# --- the streamed solver ---------------------------------------------------------------


@pytest.mark.parametrize("divergence", ["kl", "chi2"])
@pytest.mark.parametrize("sense", ["reward", "cost"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n", [3000, 300_000])
def test_a_streamed_solve_equals_the_in_memory_one(divergence, sense, weighted, n):
    rng = np.random.default_rng(n)
    psi = stage_like(3, n // 100, 100, seed=n)
    weights = (rng.random(psi.shape) < 0.8).astype(np.float32) if weighted else None
    ks = [0.0, 0.005, 1.0, 6.0]  # k = 0.005 is solved in float64 from float32 samples
    here = worst_case(torch.from_numpy(psi), weights, k=ks, divergence=divergence, sense=sense)
    streamed = worst_case(ArraySource(psi, weights, columns=20_000), k=ks, divergence=divergence, sense=sense)
    scale = float(np.ptp(psi))
    np.testing.assert_allclose(streamed.value, here.value, rtol=0, atol=2e-6 * scale)
    np.testing.assert_allclose(streamed.mean, here.mean, rtol=0, atol=1e-12 * scale)
    np.testing.assert_array_equal(streamed.extreme, here.extreme)
    np.testing.assert_array_equal(streamed.status, here.status)


class _Counting(ArraySource):
    """An array source that records the purpose of every pass (a test fake of the counting only)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.purposes = []

    def chunks(self, purpose):
        self.purposes.append(purpose)
        yield from super().chunks(purpose)


@pytest.mark.parametrize("sense", ["reward", "cost"])
def test_the_streamed_statistics_take_one_pass_and_equal_the_in_memory_ones(sense):
    from postconv.selection._dual import _Problem
    from postconv.selection._streamed import StreamedProblem

    psi = stage_like(3, 30, 100, seed=4).astype(np.float64) + 100.0  # far from 0: the moments move far
    weights = np.ones_like(psi)
    weights[1, :700] = 0.0  # row 1's first chunk carries no weight ...
    psi[1, :700] = -1e9  # ... and holds padding far below its samples: it must not count
    weights[0, ::7] = 0.5
    psi[2, -5:] = -50.0  # the lowest samples in the last chunk: the minimum and its mass restart
    psi[2, -40] = -50.0
    source = _Counting(psi, weights, columns=500)
    streamed = StreamedProblem(source, sense).rows(1)
    assert source.purposes == ["reading: statistics"]
    sign = 1.0 if sense == "reward" else -1.0
    q = torch.from_numpy(weights / weights.sum(-1, keepdims=True))
    here = _Problem(torch.from_numpy(sign * psi), q).rows(1)
    np.testing.assert_array_equal(streamed.low, here.low)
    for name in ("mean", "var", "third", "top", "q_min"):
        np.testing.assert_allclose(
            getattr(streamed, name), getattr(here, name), rtol=1e-9, atol=1e-12, err_msg=name
        )
    if sense == "reward":
        assert streamed.q_min[2] == pytest.approx(6 / 3000)


@pytest.mark.parametrize("divergence", ["kl", "chi2"])
def test_padding_far_below_the_samples_changes_no_streamed_value(divergence):
    psi = stage_like(2, 30, 100, seed=5)
    weights = np.ones_like(psi)
    weights[0, :1500] = 0.0  # the first chunks of row 0 are padding, as a ragged stack has
    psi[0, :1500] = np.float32(-1e9)
    ks = [0.01, 1.0, 4.0]
    streamed = worst_case(ArraySource(psi, weights, columns=500), k=ks, divergence=divergence)
    here = worst_case(torch.from_numpy(psi), weights, k=ks, divergence=divergence)
    scale = float(np.ptp(psi[weights > 0]))
    np.testing.assert_allclose(streamed.value, here.value, rtol=0, atol=2e-6 * scale)
    np.testing.assert_allclose(streamed.mean, here.mean, rtol=0, atol=1e-9 * scale)


class _BrokenSource(ArraySource):
    """An array source whose second chunk is corrupted in a chosen way (a test fake)."""

    def __init__(self, psi, how: str):
        super().__init__(psi, columns=4)
        self.how = how

    def chunks(self, purpose):
        for i, chunk in enumerate(super().chunks(purpose)):
            if i == 1 and self.how == "nan":
                psi = chunk.psi.clone()
                psi[1, 2] = float("nan")
                chunk = Chunk(psi=psi, weights=None, groups=chunk.groups)
            if i == 1 and self.how == "shape":
                chunk = Chunk(psi=chunk.psi[:, :3], weights=None, groups=chunk.groups)
            yield chunk


class _WrongWeights(ArraySource):
    """An array source whose chunks carry one weight per column, not per sample (a test fake)."""

    def chunks(self, purpose):
        for chunk in super().chunks(purpose):
            yield Chunk(psi=chunk.psi, weights=torch.ones(chunk.psi.shape[1]), groups=chunk.groups)


SOURCE_CASES = [
    (
        lambda: worst_case(_WrongWeights(np.ones((2, 6)))),
        "the sample source gave weights of shape (6,) for psi (2, 6): fix the source",
    ),
    (
        lambda: bootstrap(np.ones((2, 3))),
        "bootstrap needs groups: the episode or env of each sample, shape (n,) or (B, n)",
    ),
    (
        lambda: bootstrap(
            ArraySource(np.arange(12.0).reshape(2, 6)),
            k=[1.0],
            estimate=worst_case(np.arange(12.0).reshape(2, 6), k=[1.0], divergence="chi2"),
        ),
        "estimate must be the worst case of the same samples, k sweep, divergence and sense",
    ),
    (
        lambda: worst_case(_BrokenSource(np.ones((2, 12)), "nan")),
        "psi contains NaN or inf (checkpoint 1, sample 6); drop or repair those samples before estimating",
    ),
    (
        lambda: worst_case(_BrokenSource(np.ones((2, 12)), "shape")),
        "the sample source gave a chunk of psi (2, 3) and groups (4,); expected (2, c) and (c,): fix the source",
    ),
    (
        lambda: worst_case(ArraySource(np.ones((2, 3))), weights=[1.0, 1.0, 1.0]),
        "a sample source carries its own weights; pass weights=None with it",
    ),
    (
        lambda: worst_case(ArraySource(np.ones((2, 3))), solver="cvxpy"),
        "solver='cvxpy' needs the samples in memory; use solver='fast' with a sample source",
    ),
    (
        lambda: worst_case(ArraySource(np.arange(6.0).reshape(2, 3)), k=1.0).weights,
        "the weights of a solve streamed from a sample source are not kept",
    ),
    (
        lambda: bootstrap(ArraySource(np.ones((2, 3))), [0, 1, 2]),
        "a sample source carries its own groups and weights; pass groups=None, weights=None",
    ),
    (
        lambda: bootstrap(ArraySource(np.ones((2, 3))), method="exact"),
        "method='exact' needs the samples in memory; a sample source is resampled by group",
    ),
    (
        lambda: bootstrap(np.ones((2, 3)), [[0, 1, 2], [2, 1, 0]], method="grouped"),
        "method='grouped' needs one group label per sample shared by the checkpoints: shape (n,)",
    ),
    (lambda: bootstrap(np.ones((2, 3)), [0, 1, 2], method="fast"), "unknown method 'fast'"),
    (
        lambda: ArraySource(np.ones((2, 3)), groups=[0, 1]),
        "groups shape (2,) does not match psi's 3 samples; pass one label per sample",
    ),
    (
        lambda: ArraySource(np.ones((2, 3)), weights=[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]),
        "weights of checkpoint(s) [1] sum to zero",
    ),
]


@pytest.mark.parametrize(("call", "message"), SOURCE_CASES)
def test_sample_sources_reject_bad_input_with_its_message(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_grouped_nodes_sit_on_a_lattice_shared_by_nearby_radii():
    psi = stage_like(2, 64, 20, seed=3)
    estimate = worst_case(psi, k=[2.0, 2.05])
    nodes = grouped_module._initial_nodes(estimate, np.asarray(estimate.extreme), 2, 2)
    steps = nodes / grouped_module.SPACING
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-9)
    assert nodes.shape[1] <= 2 * (2 * grouped_module.HALF_WIDTH + 2)  # the two radii share most
