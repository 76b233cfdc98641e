"""Robustness margins (``postconv sim2sim --stress``): the margin read off a share curve, the
search over magnitudes, and the command on a run folder.

The search is tested against a fake replay (survival decided by a known threshold per episode,
no physics) so that its answer and its cost can be checked exactly; the command runs the real
C MuJoCo replay on the small random actors of :mod:`fake_runs`."""

import json

import numpy as np
import pytest
from fake_runs import NAMES, make_run
from hypothesis import given, settings
from hypothesis import strategies as st

from postconv.cli import main
from postconv.review.outcomes import read_outcomes
from postconv.sim2sim.config import KINDS, StressConfig
from postconv.sim2sim.stress import _search_kind, margin_from_shares
from postconv.sim2sim.worlds import Command


@pytest.mark.parametrize(
    ("shares", "margin", "censored"),
    [
        ([1.0, 0.8, 0.2], 1.5, 0),  # crossing on the line from 0.8 at 1 to 0.2 at 2
        ([1.0, 0.5, 0.2], 1.0, 0),  # exactly the share at a magnitude tried: that magnitude
        ([1.0, 0.9, 0.6], 2.0, 1),  # survives the top: the top, censored above
        ([0.4, 0.2, 0.0], 0.0, -1),  # fails the first: the first, censored below
        ([1.0, 0.3, 0.7, 0.1], 2 + 0.2 / 0.6, 0),  # not monotone: the largest magnitude survived counts
    ],
)
def test_the_margin_is_the_largest_survived_magnitude_moved_to_the_crossing(shares, margin, censored):
    mags = np.arange(len(shares), dtype=float)
    m, c = margin_from_shares(mags, np.array(shares)[:, None], 0.5)
    assert m[0] == pytest.approx(margin)
    assert c[0] == censored


def test_many_curves_at_once_equal_each_alone():
    rng = np.random.default_rng(0)
    mags = np.array([0.0, 0.3, 0.5, 1.2, 2.0])
    shares = rng.random((5, 50))
    together, cens = margin_from_shares(mags, shares, 0.5)
    for b in range(50):
        alone, c = margin_from_shares(mags, shares[:, b : b + 1], 0.5)
        assert (alone[0], c[0]) == (together[b], cens[b])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=2, max_size=6),
    st.lists(st.floats(0, 0.5), min_size=6, max_size=6),
    st.floats(0.05, 0.95),
)
def test_more_survival_anywhere_never_lowers_the_margin(shares, raise_by, share):
    mags = np.cumsum(np.ones(len(shares)))
    before = np.array(shares)
    after = np.minimum(1.0, before + np.array(raise_by[: len(shares)]))
    m0, _ = margin_from_shares(mags, before[:, None], share)
    m1, _ = margin_from_shares(mags, after[:, None], share)
    assert mags[0] <= m0[0] <= mags[-1]
    assert m1[0] >= m0[0] - 1e-12


class FakeReplay:
    """Episode e of checkpoint c survives magnitude m when m < critical[c] + spread[e]: no physics,
    a known answer (the share crosses 1/2 at critical[c] + the median spread)."""

    def __init__(self, critical: dict[str, float], episodes: int = 9):
        self.critical = critical
        self.spread = np.linspace(-0.2, 0.2, episodes)
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def magnitude(self, world) -> float:
        return 1.0 - world.strength

    def __call__(self, world, names):
        self.calls.append((world.name, tuple(names)))
        m = self.magnitude(world)
        return {n: m < self.critical[n] + self.spread for n in names}


def test_the_search_finds_each_crossing_within_its_final_bracket_at_one_world_per_round():
    critical = {"a": 0.13, "b": 0.37, "c": 0.52, "d": 0.71, "e": 0.05}
    replay = FakeReplay(critical)
    rounds = 4
    config = StressConfig(kinds=("strength",), rounds=rounds, base_push="none")
    base = {n: np.ones(9, dtype=bool) for n in critical}  # all survive the base world
    tried = _search_kind(
        KINDS["strength"], replay, list(critical), base, config, Command("stand"), lambda _: None
    )
    width = 0.8 / 2**rounds
    for n, crit in critical.items():
        mags = np.array(sorted(tried[n]))
        shares = np.array([[tried[n][m].mean()] for m in mags])
        margin, censored = margin_from_shares(mags, shares, 0.5)
        assert censored[0] == 0
        assert abs(margin[0] - crit) <= width  # the median spread is 0
    # cost: the top once for all, then every round runs each checkpoint at most once
    assert replay.calls[0] == ("strength=0.2,push=none", tuple(critical))
    per_checkpoint = {n: sum(n in names for _, names in replay.calls) for n in critical}
    assert max(per_checkpoint.values()) <= 1 + rounds
    assert sum(len(names) for _, names in replay.calls) <= len(critical) * (1 + rounds)


def test_a_checkpoint_that_fails_the_base_world_is_not_searched():
    replay = FakeReplay({"a": 0.5, "b": 0.5})
    config = StressConfig(kinds=("strength",), rounds=3, base_push="none")
    base = {"a": np.ones(9, dtype=bool), "b": np.zeros(9, dtype=bool)}
    tried = _search_kind(KINDS["strength"], replay, ["a", "b"], base, config, None, lambda _: None)
    assert list(tried["b"]) == [0.0]
    assert all("b" not in names for _, names in replay.calls)


def test_lattice_kinds_try_only_magnitudes_on_their_lattice():
    assert KINDS["latency"].snap(37.4) == 35.0
    assert KINDS["obs_delay"].snap(50.0) == 40.0  # 2.5 steps of 20 ms rounds to even
    config = StressConfig()
    for kind in KINDS.values():
        text = kind.shift(kind.snap(kind.top / 3), config.push)
        from postconv.sim2sim.worlds import parse_world

        parse_world(text)  # every magnitude of every kind is a valid world


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--stress-kinds", "gravity"], "give distinct kinds among strength, latency"),
        (["--stress-share", "1"], "stress share must be between 0 and 1"),
        (["--stress-rounds", "-1"], "stress rounds and n_boot must be >= 0"),
        (["--stress-push", "fast"], "scenario 'fast': write 'none' or VELOCITY@LOW-HIGH"),
        (["--stress-push", "3@1-3"], "their speed must stay below the push kind's top (3 m/s)"),
    ],
)
def test_bad_stress_options_fail_before_any_work(run_dir, capsys, options, message):
    code = main(["sim2sim", str(run_dir), "--stress", *options])
    assert code == 2
    captured = capsys.readouterr()
    assert message in " ".join((captured.out + captured.err).split())
    assert not (run_dir / "postconv" / "sim2sim").exists()


STRESS = [
    "--worlds", "nominal", "--episodes", "4", "--seconds", "0.6", "--no-wandb", "--no-video",
    "--stress", "--stress-kinds", "strength", "push", "latency", "--stress-rounds", "2",
]  # fmt: skip


def test_stress_writes_margins_that_outcomes_judge_and_a_rerun_simulates_nothing(tmp_path, capsys):
    # from an actor that holds the default pose to a fully random one: some are searched, some censored
    run_dir = make_run(tmp_path, scales=(0.0, 0.1, 0.3, 1.0))
    assert main(["sim2sim", str(run_dir), *STRESS]) == 0
    out = run_dir / "postconv" / "sim2sim"
    data = json.loads((out / "stress" / "margins.json").read_text())
    assert data["checkpoints"] == NAMES
    searched = [(k, c) for k, kind in data["kinds"].items() for c in NAMES
                if kind["censored"][c] == "" and len(kind["tried"][c]) >= 3]  # fmt: skip
    assert searched, "no checkpoint was bisected: the test would not check the search"
    for kind in data["kinds"].values():
        assert 0 < kind["env_steps"] <= (1 + 2) * data["fixed_world_steps"]  # bracket + 2 rounds at most
    for kind in data["kinds"].values():
        for c in NAMES:
            tried = np.array(kind["tried"][c])
            margin, censored = margin_from_shares(tried[:, 0], tried[:, 1:], 0.5)
            assert kind["margin"][c] == pytest.approx(margin[0])  # what the search tried gives the margin
            assert kind["censored"][c] == {0: "", 1: "above", -1: "below"}[int(censored[0])]
            assert kind["bottom"] <= kind["margin"][c] <= kind["top"]
            assert tried[0, 0] == kind["bottom"]
            survived, fell = kind["bracket"][c]  # the tried magnitudes around the margin
            assert (survived is None) == (kind["censored"][c] == "below")
            assert (fell is None) == (kind["censored"][c] == "above")
            assert (survived if survived is not None else -np.inf) <= kind["margin"][c]
            assert kind["margin"][c] <= (fell if fell is not None else np.inf)
    rows = (out / "stress" / "margins.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * len(NAMES)
    assert rows[0].endswith(",censored,survived,fell")
    outcomes = read_outcomes(out / "outcomes.csv", NAMES)
    for name in ("strength", "push", "latency"):
        assert outcomes.means[f"margin[{name}]"] == pytest.approx(data["kinds"][name]["margin"])
    judged = {s["metric"] for s in json.loads((out / "agreement.json").read_text())["scores"]}
    assert {"margin[strength]", "margin[push]", "margin[latency]"} <= judged
    files = {p: p.stat().st_mtime_ns for p in (out / "episodes").rglob("*.npz")}
    capsys.readouterr()
    assert main(["sim2sim", str(run_dir), *STRESS]) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "episodes").rglob("*.npz")} == files
    said = " ".join(capsys.readouterr().out.split())
    assert "base world 0.0, strength 0.0, push 0.0, latency 0.0" in said
    again = json.loads((out / "stress" / "margins.json").read_text())["kinds"]
    for name, kind in data["kinds"].items():
        for key in ("margin", "lo", "hi", "censored", "tried"):  # the same search, read back
            assert again[name][key] == kind[key]
        assert again[name]["env_steps"] == 0


def test_base_pushes_with_the_stages_dynamics_draws_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"--stress-push 0\.5@1-3\+dyn: \+dyn draws per-env dynamics"):
        StressConfig(base_push="0.5@1-3+dyn")
