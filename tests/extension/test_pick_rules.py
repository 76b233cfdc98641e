"""The pick rules (``--pick``): which checkpoint the selection recommends from one ranking.

Every rule ranks the same way; only ``chosen`` differs. ``worst-case`` takes the best worst
case, ``last`` the run's last checkpoint, ``evidence`` the best worst case only where it beats
the last checkpoint in a share ``pick_p`` of the paired bootstrap replicates.
"""

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postconv.cli import main
from postconv.ranking.config import PICK_RULES, SelectionConfig
from postconv.ranking.result import SelectionResult
from postconv.ranking.select import recommend, select
from postconv.storage.samples_file import SampleSet, save_samples

EPISODES = 40


def _samples(early_shift: float, seed: int = 0) -> SampleSet:
    """Three checkpoints in training order; the first sits ``early_shift`` above the last,
    the middle one well below both. Shared episode noise (common random numbers) keeps the
    paired comparison sharp."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(0.0, 1.0, EPISODES)
    own = rng.normal(0.0, 0.3, (3, EPISODES))
    psi = np.stack([shared + early_shift, shared - 1.0, shared]) + own
    return SampleSet(psi=psi, names=("early", "middle", "last"), groups=np.arange(EPISODES))


def _config(pick: str, **kw) -> SelectionConfig:
    return SelectionConfig(k=(2.0,), primary_k=2.0, n_boot=200, pick=pick, **kw)


@pytest.mark.parametrize(
    ("pick", "early_shift", "chosen"),
    [
        ("worst-case", 1.0, "early"),
        ("evidence", 1.0, "early"),  # far ahead of the last: P(> last) near 1
        ("last", 1.0, "last"),
        ("worst-case", 0.02, "early"),  # a hair ahead by chance
        ("evidence", 0.02, "last"),  # ... is not evidence
        ("last", 0.02, "last"),
    ],
)
def test_each_rule_recommends_its_checkpoint_and_ranks_alike(pick, early_shift, chosen):
    samples = _samples(early_shift, seed=0)
    reference = select(samples, _config("worst-case"))
    assert reference.chosen_by_worst_case == "early", "the fixture must put the early one first"
    result = select(samples, _config(pick))
    assert result.chosen == chosen
    assert result.chosen_by_worst_case == "early"
    assert [c.rank for c in result.checkpoints] == [c.rank for c in reference.checkpoints]
    p_early = result.checkpoints[0].p_beats_last[0]
    if pick == "evidence":
        assert (chosen == "early") == (p_early >= 0.9)
        assert f"{p_early:.3f}" in result.chosen_because


def test_when_the_worst_case_picks_the_last_every_rule_agrees():
    samples = _samples(-0.5)  # the early one is now below the last
    for pick in PICK_RULES:
        result = select(samples, _config(pick))
        assert result.chosen == result.chosen_by_worst_case == "last"


@settings(max_examples=40, deadline=None)
@given(
    shift=st.floats(-1.0, 1.0),
    seed=st.integers(0, 10_000),
    pick=st.sampled_from(PICK_RULES),
    pick_p=st.floats(0.5, 1.0),
)
def test_the_recommendation_is_always_the_worst_cases_pick_or_the_last(shift, seed, pick, pick_p):
    samples = _samples(shift, seed)
    result = select(samples, SelectionConfig(k=(2.0,), primary_k=2.0, n_boot=50, pick=pick, pick_p=pick_p))
    assert result.chosen in {result.chosen_by_worst_case, "last"}
    if pick == "last":
        assert result.chosen == "last"
    if pick == "worst-case":
        assert result.chosen == result.chosen_by_worst_case
    if pick == "evidence" and result.chosen_by_worst_case != "last":
        best = next(c for c in result.checkpoints if c.name == result.chosen_by_worst_case)
        assert (result.chosen != "last") == (best.p_beats_last[0] >= pick_p)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pick": "best"}, "--pick 'best': choose one of worst-case, evidence, last"),
        ({"pick": "evidence", "pick_p": 0.0}, "--pick-p is a share of bootstrap replicates, in (0, 1]"),
        ({"pick": "evidence", "pick_p": 1.5}, "--pick-p is a share of bootstrap replicates, in (0, 1]"),
    ],
)
def test_a_bad_pick_is_refused_with_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SelectionConfig(**kwargs)


def test_evidence_without_a_bootstrap_keeps_the_last_checkpoint_and_says_why():
    result = select(
        _samples(0.5, seed=0), SelectionConfig(k=(2.0,), primary_k=2.0, n_boot=0, pick="evidence")
    )
    assert (result.chosen_by_worst_case, result.chosen) == ("early", "last")
    assert result.chosen_because == (
        "the last checkpoint: no bootstrap (--n-boot 0), so no evidence that the worst case's pick early "
        "beats it (--pick evidence)"
    )
    assert recommend(SelectionConfig(), ["a", "b"], "a", None).name == "b"


def test_the_pick_survives_json_and_old_results_still_load():
    result = select(_samples(0.02, seed=0), _config("evidence"))
    again = SelectionResult.from_json(result.to_json())
    assert again == result
    old = json.loads(result.to_json())
    for key in ("chosen_by_worst_case", "chosen_because"):
        del old[key]
    for key in ("pick", "pick_p"):
        del old["config"][key]
    old["chosen"] = "early"  # results written before --pick recommended the worst case's pick
    loaded = SelectionResult.from_json(json.dumps(old))
    assert loaded.chosen_by_worst_case == "early"
    assert loaded.config.pick == "worst-case"
    assert loaded.chosen_because == "best worst case at k = 2"


def test_the_select_command_says_which_rule_chose(tmp_path, capsys):
    path = save_samples(tmp_path / "samples.npz", _samples(0.02, seed=0))
    assert main(["select", str(path), "--k", "2", "--pick", "evidence", "--n-boot", "200"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    written = json.loads((tmp_path / "selection.json").read_text())
    assert written["chosen"] == "last"
    assert written["chosen_by_worst_case"] == "early"
    assert written["config"]["pick"] == "evidence"
    assert "chosen checkpoint: last (the last checkpoint: the worst case's pick early beats it in only" in out


def test_a_rule_that_departs_from_the_worst_case_names_both_picks():
    result = select(_samples(1.0), _config("last"))
    roles = {p.name: p.roles for p in result.picks}
    assert roles["last"] == ("chosen", "last")
    assert roles["early"][0] == "worst case's pick"
    # under the default rule the worst case's pick is the chosen one: no second label
    default = select(_samples(1.0), _config("worst-case"))
    assert {p.name: p.roles for p in default.picks}["early"][0] == "chosen"
    assert all("worst case's pick" not in p.roles for p in default.picks)
