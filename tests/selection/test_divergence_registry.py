"""A divergence is one class and one registry line: a toy one, added here, runs through every
solver (fast, streamed, grouped bootstrap, the cvxpy reference) and the options' checks."""

import math

import numpy as np
import pytest

from postconv.selection import bootstrap, divergences, worst_case
from postconv.selection.divergences.kl import KL

BITS = math.log(2.0)


class KLInBits(KL):
    """A toy: the KL divergence measured in bits, D = KL / ln 2, so its ball of radius k is the
    KL ball of radius k ln 2. It overrides only where the radius or the divergence's value enters."""

    name = "kl_bits"

    def at_edge(self, share, k):
        return super().at_edge(share, k * BITS)

    def solve(self, rows, kgrid, active, tol, start=None):
        return super().solve(rows, kgrid * BITS, active, tol, start)

    def dual_value(self, low, params, total, k):
        return super().dual_value(low, params, total, k * BITS)

    def cvxpy_ball(self, scaled, w, k, n):
        return super().cvxpy_ball(scaled, w, k * BITS, n)

    def cvxpy_more(self, ps, qs, k):
        return super().cvxpy_more(ps, qs, k * BITS)

    def of(self, rho, q):
        return super().of(rho, q) / BITS

    def node_duals(self, param, s0, s1, kk, edge_x):
        return super().node_duals(param, s0, s1, kk * BITS, edge_x)


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setattr(divergences, "REGISTRY", dict(divergences.REGISTRY))
    monkeypatch.setattr(divergences, "_LOADED", dict(divergences._LOADED))
    divergences.register("kl_bits", KLInBits)
    return "kl_bits"


def test_the_registry_names_every_divergence_and_refuses_an_unknown_one():
    assert divergences.names()[:2] == ("kl", "chi2")
    with pytest.raises(ValueError, match="divergence must be one of kl, chi2"):
        divergences.get("tv")


def test_a_registered_toy_divergence_solves_as_the_kl_ball_it_equals(registered):
    psi = np.random.default_rng(0).normal(size=(3, 400))
    ks = np.array([0.3, 1.0, 2.0])
    toy = worst_case(psi, k=ks, divergence=registered)
    kl = worst_case(psi, k=ks * BITS, divergence="kl")
    np.testing.assert_allclose(toy.value, kl.value, rtol=1e-9, atol=1e-12)
    assert toy.divergence == "kl_bits"
    np.testing.assert_allclose(toy.weights, kl.weights, atol=1e-9)
    # the conic reference, through the toy's own ball
    small = psi[:1, :40]
    np.testing.assert_allclose(
        worst_case(small, k=1.0, divergence=registered, solver="cvxpy").value,
        worst_case(small, k=1.0, divergence=registered).value,
        atol=1e-5,
    )


def test_a_registered_toy_divergence_runs_the_grouped_bootstrap(registered):
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(40), 25)
    psi = rng.normal(0, 1, (2, 40))[:, groups] + rng.normal(0, 0.3, (2, 1000))
    toy = bootstrap(psi, groups, k=1.0, divergence=registered, n_boot=50, seed=3, method="grouped")
    kl = bootstrap(psi, groups, k=BITS, divergence="kl", n_boot=50, seed=3, method="grouped")
    np.testing.assert_allclose(toy.replicates, kl.replicates, atol=1e-6)


def test_the_options_accept_a_registered_divergence(registered):
    from postconv.cli.options import build_parser
    from postconv.ranking.config import SelectionConfig

    assert SelectionConfig(divergence=registered).divergence == "kl_bits"
    args = build_parser().parse_args(["select", "x.npz", "--divergence", registered])
    assert args.divergence == "kl_bits"
    with pytest.raises(ValueError, match="choose one of kl, chi2, kl_bits"):
        SelectionConfig(divergence="tv")


def test_a_class_must_carry_the_name_it_is_registered_under(monkeypatch):
    monkeypatch.setattr(divergences, "REGISTRY", dict(divergences.REGISTRY))
    with pytest.raises(ValueError, match="its class says name = 'kl_bits'"):
        divergences.register("bits", KLInBits)
    with pytest.raises(TypeError, match="is not a subclass of Divergence"):
        divergences.register("bits", dict)


@pytest.mark.parametrize(
    ("name", "closed_form"),
    [("kl", lambda k: math.exp(-k)), ("chi2", lambda k: 1.0 / (1.0 + 2.0 * k))],
)
@pytest.mark.parametrize("k", [0.0, 0.5, 2.0, 6.0, 50.0])  # 50: a share of 2e-22, still to the digit
def test_the_edge_share_found_from_at_edge_is_the_closed_form(name, closed_form, k):
    assert divergences.get(name).edge_share(k) == pytest.approx(closed_form(k), rel=1e-9)
