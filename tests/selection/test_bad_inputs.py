"""Bad input gets a ValueError that names the problem and the fix: the exact messages."""

import re

import numpy as np
import pytest

from postconv.selection import agreement, best_k, bootstrap, discretize, rank, regret_at, worst_case

PSI = np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 3.0]])

WORST_CASE_CASES = [
    (
        {"psi": [0.0, np.nan, 1.0]},
        "psi contains NaN or inf (first at index 1); drop or repair those samples before estimating",
    ),
    (
        {"psi": [[0.0, 1.0], [np.inf, 1.0]]},
        "psi contains NaN or inf (first at index (1, 0)); drop or repair those samples before estimating",
    ),
    (
        {"psi": np.zeros((2, 2, 2))},
        "psi must be a 1-D array of samples or a 2-D array (checkpoints, samples); got shape (2, 2, 2)",
    ),
    ({"psi": np.zeros((2, 0))}, "psi has no samples; pass at least one sample per checkpoint"),
    ({"psi": ["a", "b"]}, "psi must be an array of numbers; got list"),
    ({"psi": [True, False]}, "psi must hold real numbers; got dtype torch.bool"),
    ({"psi": PSI, "k": -1.0}, "k must be finite and >= 0; got [-1.0]"),
    ({"psi": PSI, "k": [1.0, np.nan]}, "k must be finite and >= 0; got [1.0, nan]"),
    ({"psi": PSI, "k": [[1.0]]}, "k must be a scalar or a 1-D sweep; got shape (1, 1)"),
    ({"psi": PSI, "k": []}, "k is empty; pass a radius or a sweep such as [2, 4, 6]"),
    ({"psi": PSI, "weights": [1.0, -1.0, 1.0]}, "weights must be non-negative; got a negative weight"),
    (
        {"psi": PSI, "weights": [1.0, np.nan, 1.0]},
        "weights contain NaN or inf; pass finite, non-negative weights",
    ),
    (
        {"psi": PSI, "weights": [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]},
        "weights of checkpoint(s) [1] sum to zero; give every checkpoint at least one sample with positive weight",
    ),
    (
        {"psi": [1.0, 2.0], "weights": [0.0, 0.0]},
        "weights sum to zero; give every checkpoint at least one sample with positive weight",
    ),
    (
        {"psi": PSI, "weights": [1.0, 1.0]},
        "weights shape (2,) does not match psi shape (2, 3); pass one weight per sample (shape (n,) or the same shape as psi)",
    ),
    ({"psi": PSI, "divergence": "tv"}, "unknown divergence 'tv'; choose one of 'kl', 'chi2'"),
    ({"psi": PSI, "solver": "scs"}, "unknown solver 'scs'; choose one of 'fast', 'cvxpy'"),
    (
        {"psi": PSI, "sense": "loss"},
        "unknown sense 'loss'; choose one of 'reward', 'cost' (reward: larger is better; cost: smaller is better)",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), WORST_CASE_CASES)
def test_worst_case_rejects_bad_input_with_its_message(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        worst_case(**kwargs)


OTHER_CASES = [
    (lambda: rank([1.0, 2.0]), "rank needs the plain means to break ties; pass mean= or a WorstCase"),
    (lambda: rank([1.0, 2.0], [1.0]), "mean has 1 entries for 2 checkpoints; pass one mean per checkpoint"),
    (lambda: rank([1.0, np.nan], [1.0, 2.0]), "values and means to rank must be finite"),
    (
        lambda: rank(worst_case([1.0, 2.0], k=1.0)),
        "rank needs a batch of checkpoints: call worst_case with psi of shape (B, n)",
    ),
    (
        lambda: bootstrap(PSI, [0, 1]),
        "groups shape (2,) does not match psi shape (2, 3); pass one label per sample",
    ),
    (lambda: bootstrap(PSI, [0, 1, 1], n_boot=1), "n_boot must be an integer >= 2; got 1"),
    (lambda: bootstrap(PSI, [0, 1, 1], level=1.5), "level must be in (0, 1); got 1.5"),
    (
        lambda: bootstrap(PSI, [[0, 1, 1], [0, 0, 0]]),
        "paired bootstrap needs every checkpoint to have samples of every group",
    ),
    (
        lambda: agreement([1.0, 2.0], [1.0, 2.0, 3.0]),
        "2 predicted scores for 3 real outcomes; pass one of each per checkpoint",
    ),
    (lambda: agreement([1.0], [1.0]), "agreement needs at least 2 checkpoints with real outcomes"),
    (
        lambda: agreement([1.0, np.inf], [1.0, 2.0]),
        "predicted scores and real outcomes must be finite numbers",
    ),
    (lambda: regret_at([1.0, 2.0], [1.0, 2.0], m=3), "m must be an integer between 1 and 2; got 3"),
    (
        lambda: best_k(np.zeros((3, 2)), [1, 2, 3], [1.0]),
        "values must have shape (B, 1) for 1 radii; got (3, 2)",
    ),
    (
        lambda: best_k(np.zeros((2, 1)), [1, 2], [1.0]),
        "choosing k by leave-one-out needs at least 3 checkpoints with real outcomes",
    ),
    (
        lambda: best_k(np.zeros((3, 1)), [1, 2, 3], [1.0], metric="r2"),
        "unknown metric 'r2'; choose one of 'spearman', 'kendall', 'regret'",
    ),
    (lambda: discretize(PSI, on=("psi", 0)), "cannot bin on feature column 0: no features were given"),
    (
        lambda: discretize(PSI, features=np.zeros((2, 3, 2)), on=(5,)),
        "feature column 5 does not exist; features have 2 columns",
    ),
    (lambda: discretize(PSI, bins=0), "bins must be a positive integer; got 0"),
    (lambda: discretize(PSI, on=()), 'on is empty; bin on "psi" and/or feature column indices'),
    (
        lambda: discretize([[1.0, np.nan]]),
        "psi contains NaN or inf; drop or repair those samples before binning",
    ),
    (
        lambda: discretize(PSI, features=np.zeros((2, 2, 1)), on=(0,)),
        "features must hold one row per sample of psi, checkpoint by checkpoint",
    ),
]


@pytest.mark.parametrize(("call", "message"), OTHER_CASES)
def test_selection_functions_reject_bad_input_with_their_message(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
