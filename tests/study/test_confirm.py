"""The confirmation's analysis without a simulator: the exact test, the intervals, and that
no comparison is computed before every pre-registered seed is in. The runs are the
exploration tests' synthetic stage folders (tests/study/test_explore.py)."""

import json
import re
from dataclasses import replace

import numpy as np
import pytest
from rich.console import Console
from test_explore import _run

from postconv.study.confirm import (
    PROTOCOL,
    Protocol,
    analyze,
    bootstrap_interval,
    seed_state,
    sign_flip_p,
    status_table,
)


@pytest.mark.parametrize(
    ("d", "p"),
    [
        ([1.0] * 5, 1 / 32),  # better on every seed: only the identity flip is as large
        ([1.0, -1.0], 3 / 4),  # a mean of 0: three of four flips reach it
        ([-1.0, -2.0, -0.5], 1.0),  # worse on every seed
        ([0.0, 0.0], 1.0),  # no difference is no evidence
    ],
)
def test_the_sign_flip_p_value_counts_the_flips_at_least_as_large(d, p):
    assert sign_flip_p(np.array(d)) == pytest.approx(p)


def test_the_bootstrap_interval_holds_the_mean_and_shrinks_with_more_seeds():
    rng = np.random.default_rng(0)
    few, many = rng.normal(0.1, 1.0, 10), rng.normal(0.1, 1.0, 1000)
    lo, hi = bootstrap_interval(few, 2000)
    assert lo < few.mean() < hi
    mlo, mhi = bootstrap_interval(many, 2000)
    assert mhi - mlo < (hi - lo) / 3


def test_the_protocol_registers_fresh_seeds_and_at_most_two_secondary_methods():
    assert not set(PROTOCOL.seeds) & {0, 1, 2}, "the exploration's seeds"
    assert len(PROTOCOL.seeds) >= 10
    assert len(PROTOCOL.secondary) <= 2
    assert set(PROTOCOL.against) <= set(PROTOCOL.baselines)


def _tiny(tmp_path, seeds) -> Protocol:
    """The protocol at the synthetic runs' size: candidates 0, 10, 20, 30; kinds mass and latency;
    a level two or three seeds can reach (the smallest sign-flip p over n seeds is 2^-n)."""
    return replace(PROTOCOL, seeds=seeds, runs_root=str(tmp_path / "runs"), n_boot=200, iterations=31,
                   from_iter=0, every=1, kinds=("mass", "latency"), alpha=0.3)  # fmt: skip


def _judge(protocol: Protocol, seeds) -> None:
    """Synthetic judged runs of ``seeds``: the stage's samples (push and +dyn) and two kinds' margins."""
    kinds = {"mass": [1, 2, 3, 4], "latency": [4, 3, 2, 1]}
    for seed in seeds:
        _run(protocol.run_dir(seed), seed=seed, kinds=kinds, scenarios=("push_0.5_1-3s", "push_0.5_1-3s_dyn"))


def test_the_registered_candidates_are_one_in_two_from_1700_and_the_last():
    assert PROTOCOL.candidate_iterations == (*range(1700, 2000, 20), 1999)
    assert len(PROTOCOL.candidate_iterations) == 16
    assert len(PROTOCOL.kinds) == 9


@pytest.mark.parametrize(
    ("iterations", "kinds", "message"),
    [
        (
            (0, 10, 20),
            ("mass", "latency"),
            "seed 7: candidates at iterations [0, 10, 20], registered [0, 10, 20, 30]",
        ),
        ((0, 10, 20, 29), ("mass", "latency"), "candidates at iterations [0, 10, 20, 29]"),
        ((0, 10, 20, 30), ("mass",), "seed 7: margins for kinds ['mass'], registered ['latency', 'mass']"),
        ((0, 10, 20, 30), ("mass", "latency", "noise"), "margins for kinds ['latency', 'mass', 'noise']"),
    ],
)
def test_a_seed_off_the_registered_design_is_refused(tmp_path, iterations, kinds, message):
    from postconv.study.confirm import check_design

    with pytest.raises(ValueError, match=re.escape(message)):
        check_design(_tiny(tmp_path, seeds=(7,)), 7, np.array(iterations), kinds)


def test_a_seed_that_cannot_finish_is_a_named_deviation_and_a_judged_one_always_counts(tmp_path):
    protocol = _tiny(tmp_path, seeds=(0, 1, 2))
    _judge(protocol, (0, 1))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=re.escape("seeds [1] are judged: a judged seed counts")):
        analyze(protocol, out, Console(quiet=True), unfinished={1: "x"})
    with pytest.raises(ValueError, match=re.escape("seeds [5] are not pre-registered")):
        analyze(protocol, out, Console(quiet=True), unfinished={5: "x"})
    with pytest.raises(
        ValueError, match=re.escape("2 judged seeds cannot reach p < 0.05 (the smallest sign-flip p is 2^-2)")
    ):
        analyze(replace(protocol, alpha=0.05), out, Console(quiet=True), unfinished={2: "x"})
    paths = analyze(protocol, out, Console(quiet=True), unfinished={2: "training diverged at iteration 1234"})
    result = json.loads(paths["result"].read_text())
    assert result["unfinished"] == {"2": "training diverged at iteration 1234"}
    assert {t["seeds"] for t in result["tests"] if t["measure"] == "regret1"} == {2}
    assert "- seed 2: training diverged at iteration 1234; the test runs over the other seeds" in (
        paths["markdown"].read_text()
    )


def test_a_seed_without_a_spearman_leaves_that_test_by_name_but_not_the_regret_test():
    from postconv.study.confirm import compare

    protocol = replace(PROTOCOL, seeds=(100, 101, 102), n_boot=100)
    table = [{"seed": s, "method": m, "regret1": 0.1, "spearman": np.nan if (s, m) == (101, "mean") else 0.2}
             for s in protocol.seeds for m in (*protocol.methods, *protocol.baselines)]  # fmt: skip
    rows = {(t["method"], t["against"], t["measure"]): t for t in compare(protocol, table)}
    rho = rows[(protocol.primary, "mean", "spearman")]
    assert (rho["seeds"], rho["seeds_without"]) == (2, [101])
    regret = rows[(protocol.primary, "mean", "regret1")]
    assert (regret["seeds"], regret["seeds_without"]) == (3, [])


def test_no_comparison_before_every_seed_is_in_then_one_row_per_seed_and_checkpoint(tmp_path):
    protocol = _tiny(tmp_path, seeds=(0, 1, 2))
    _judge(protocol, (0, 1))
    out = tmp_path / "out"
    paths = analyze(protocol, out, Console(quiet=True))
    assert "result" not in paths
    assert not (out / "result.json").exists()
    assert len((out / "candidates.csv").read_text().splitlines()) == 1 + 2 * 4
    _judge(protocol, (2,))
    paths = analyze(protocol, out, Console(quiet=True))
    result = json.loads(paths["result"].read_text())
    tests = {(t["method"], t["against"], t["measure"]) for t in result["tests"]}
    ranked = ("wc[episode,k=2]", "wc[push+dyn,k=2]")
    rule = "evidence[wc[episode,k=2],p=0.9]"  # a rule picks one candidate: no Spearman to compare
    assert tests == {(m, b, x) for m in ranked for b in ("mean", "last") for x in ("regret1", "spearman")} | {
        (rule, b, "regret1") for b in ("mean", "last")}  # fmt: skip
    header = (out / "candidates.csv").read_text().splitlines()[0]
    assert header.startswith("seed,checkpoint,")
    assert "wc[dyn,k=2]" in header
    assert "margin[latency]" in header
    assert "| `last` |" in paths["markdown"].read_text()
    assert set(result["verdict"]["beats"]) == {"mean", "last"}
    assert result["verdict"]["outcome"] in paths["markdown"].read_text()


def test_an_unregistered_seed_is_refused():
    from postconv.study.confirm import main

    with pytest.raises(SystemExit):
        main(["run", "--seeds", "0"])


def test_a_protocol_names_each_runs_folder_by_seed():
    assert Protocol(runs_root="x").run_dir(101).as_posix() == "x/stand_s101"


@pytest.mark.parametrize(
    ("p_mean", "p_last", "h1", "says"),
    [
        (0.01, 0.02, True, "H1 holds"),
        (0.20, 0.02, False, "beats the last checkpoint but not the mean"),
        (0.01, 0.30, False, "recommends the last checkpoint"),
        (0.50, 0.50, False, "recommends the last checkpoint"),
    ],
)
def test_the_verdict_needs_both_regret_comparisons(p_mean, p_last, h1, says):
    from postconv.study.confirm import verdict

    tests = [{"method": PROTOCOL.primary, "measure": "regret1", "against": "mean", "p": p_mean},
             {"method": PROTOCOL.primary, "measure": "regret1", "against": "last", "p": p_last},
             {"method": PROTOCOL.primary, "measure": "spearman", "against": "last", "p": 0.0}]  # fmt: skip
    decision = verdict(PROTOCOL, tests)
    assert decision["h1"] is h1
    assert says in decision["outcome"]


def test_the_status_says_how_far_each_seed_got(tmp_path):
    protocol = replace(PROTOCOL, seeds=(100, 101, 102), runs_root=str(tmp_path), iterations=20)
    for seed, files in (
        (100, ["model_0.pt", "model_10.pt", "model_19.pt"]),
        (101, ["model_0.pt", "model_10.pt"]),
    ):
        run = protocol.run_dir(seed)
        run.mkdir()
        for name in files:
            (run / name).write_bytes(b"")
    done = protocol.run_dir(100)
    (done / "postconv" / "sim2sim" / "stress").mkdir(parents=True)
    (done / "postconv" / "selection.json").write_text("{}")
    (done / "postconv" / "sim2sim" / "stress" / "margins.json").write_text("{}")
    (tmp_path / "stand_s100.provenance.jsonl").write_text(
        '{"step": "train", "commit": "abcdef0123", "started": ""}\n'
    )
    states = {s: seed_state(protocol, s) for s in protocol.seeds}
    assert (states[100]["iteration"], states[100]["ranked"], states[100]["judged"]) == (19, True, True)
    assert states[100]["commits"] == ["abcdef0"]
    assert (states[101]["iteration"], states[101]["judged"]) == (10, False)
    assert states[102]["iteration"] is None
    console = Console(width=120, record=True)
    console.print(status_table(protocol))
    text = console.export_text()
    assert "1 of 3 seeds judged" in text
    for said in ("11 / 20", "not started", "done"):
        assert said in text
