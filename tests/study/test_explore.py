"""The exploration scores exactly what the stage ranks, its evidence rule leaves the last
checkpoint only on evidence, and regrets are shares of each kind's searched range.

Sample folders are written by the store's own writer with synthetic arrays (what a rollout
would write, with respawns and falls so that the settled masks matter), and the margins as
``postconv sim2sim --stress`` writes them: the arithmetic is tested here, the simulators elsewhere.
"""

import json

import numpy as np
import pytest
from rich.console import Console

from postconv.ranking.config import SelectionConfig
from postconv.stage.config import StageConfig
from postconv.stage.run import select_run
from postconv.storage.sample_store import SampleWriter, sample_dir
from postconv.study.explore import (
    MarginOutcomes,
    episode_samples,
    episode_scores,
    evidence_picks,
    explore,
    margin_outcomes,
    measure_seed,
    pooled,
    scores,
    size_curve,
    stage_samples,
)
from postconv.study.samples import from_stage

SCENARIOS = ("push_0.5_1-3s", "push_1_2-4s")


def _run(tmp_path, shift=(0.0, 0.0, 0.0, 0.0), steps=80, envs=16, seed=0, kinds=None, scenarios=SCENARIOS):
    """A run folder with the stage's samples of 4 candidates (candidate i's reward shifted by
    ``shift[i]``) and, when ``kinds`` (kind -> (4,) margins) is given, their margins.
    Scenarios named ``*_dyn`` record dynamics draws, as a ``+dyn`` scenario's folders do."""
    rng, dyn_rng = np.random.default_rng(seed), np.random.default_rng([seed, 99])
    root = tmp_path / "postconv" / "samples"
    names = [f"model_{i * 10}" for i in range(len(shift))]
    sets = []
    root.mkdir(parents=True)
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "agent.yaml").write_text("actor:\n  activation: elu\n")
    for i, name in enumerate(names):
        (tmp_path / f"{name}.pt").touch()  # the run's checkpoints by name; the exploration never loads them
        for scenario in scenarios:
            r = dyn_rng if scenario.endswith("_dyn") else rng  # the nominal draws as without it
            psi = (0.02 + 0.01 * r.standard_normal((steps, envs)) + shift[i]).astype(np.float32)
            # the same falls for every candidate (common random numbers)
            crn = np.random.default_rng([seed, scenarios.index(scenario)])
            episode = np.cumsum(crn.random((steps, envs)) < 0.03, axis=0).astype(np.int32)
            terminated = np.zeros((steps, envs), bool)
            terminated[:-1] = episode[1:] != episode[:-1]
            psi[terminated] = -2.0
            gz = (-1.0 + 0.05 * r.random((steps, envs))).astype(np.float32)
            writer = SampleWriter(sample_dir(root, scenario, name, 0), steps, envs, 2, 1)
            writer.write(0, {"terms": np.stack([psi, np.zeros_like(psi)], -1), "psi": psi,
                             "features": gz[..., None], "episode": episode, "terminated": terminated,
                             "truncated": np.zeros((steps, envs), bool)})  # fmt: skip
            writer.finish({"key": "k", "checkpoint": {"name": name, "iteration": i * 10},
                           "reward_terms": ["alive", "effort"], "feature_names": ["projected_gravity.z"],
                           "spec": {"burn_in_steps": 5}, "age_at_start": 5,
                           "scenario": {"dynamics": {"strength": [0.8, 1.0]} if scenario.endswith("_dyn") else None}})  # fmt: skip
            sets.append([scenario, name, 0, "k"])
    evaluation = {"scenarios": list(scenarios), "candidates": names, "skipped": {}, "sample_sets": sets}
    (tmp_path / "postconv" / "evaluation.json").write_text(json.dumps(evaluation))
    if kinds is not None:
        stress = tmp_path / "postconv" / "sim2sim" / "stress"
        stress.mkdir(parents=True)
        data = {"checkpoints": names, "kinds": {
            k: {"bottom": 0.0, "top": 10.0, "margin": dict(zip(names, map(float, m), strict=True))}
            for k, m in kinds.items()}}  # fmt: skip
        (stress / "margins.json").write_text(json.dumps(data))
    return tmp_path


def test_the_per_episode_worst_case_is_the_stages_own_number(tmp_path):
    run = _run(tmp_path, shift=(0.0, 0.003, -0.002, 0.001))
    staged = select_run(run, StageConfig(report=False, wandb=False, selection=SelectionConfig(k=(0.5, 1, 2, 3), n_boot=0)),
                        Console(quiet=True)).pooled  # fmt: skip
    sc = scores(stage_samples(run))
    for i, c in enumerate(staged.checkpoints):
        assert sc["mean"][i] == pytest.approx(c.mean, abs=1e-6)
        for j, k in enumerate((0.5, 1, 2, 3)):
            assert sc[f"wc[episode,k={k:g}]"][i] == pytest.approx(c.worst_case[j], abs=1e-6)


def test_study_samples_give_the_stages_episodes(tmp_path):
    run = _run(tmp_path, shift=(0.0, 0.003, -0.002, 0.001), seed=2)
    staged = stage_samples(run).episodes
    mine = episode_samples(from_stage(run))
    np.testing.assert_array_equal(mine.psi, staged.psi)
    np.testing.assert_array_equal(mine.groups, staged.groups)  # one seed: the group is the env slot
    half = episode_samples(from_stage(run), slots=np.arange(8))
    np.testing.assert_array_equal(half.psi, staged.psi[:, np.r_[0:8, 16:24]])


def test_scores_keep_their_meaning(tmp_path):
    s = stage_samples(_run(tmp_path, shift=(0.0, 0.0, 0.0, 0.01)))
    sc = scores(s, train_reward=np.array([1.0, 2.0, 3.0, 4.0]))
    assert list(sc["last"]) == [0, 10, 20, 30]
    # the ball grows, the worst case falls
    assert np.all(sc["wc[episode,k=3]"] <= sc["wc[episode,k=0.5]"] + 1e-9)
    assert np.all(sc["upright"] <= 0)  # minus the tilt 1 + g_z
    assert np.all(sc["upright"] >= -0.05)
    assert np.all(sc["sim_falls"] <= 0)
    assert np.argmax(sc["worst_scenario_rank[k=2]"]) == 3  # best in both scenarios: worst rank 1
    assert sc["worst_scenario_rank[k=2]"].max() == -1


@pytest.mark.parametrize(
    ("shift", "picked"),
    [
        ((0.0, 0.05, 0.0, 0.0), 1),  # a candidate far better than the last: it replaces the last
        ((0.0, 0.0005, 0.0, 0.0), 3),  # within the noise: the last stays
        ((0.0, 0.0, 0.0, 0.05), 3),  # the last is the best
    ],
)
def test_the_evidence_rule_leaves_the_last_only_on_evidence(tmp_path, shift, picked):
    picks = evidence_picks(stage_samples(_run(tmp_path, shift=shift, seed=3)).episodes)
    assert picks["evidence[mean,p=0.9]"] == picked
    assert picks["evidence[wc[episode,k=2],p=0.9]"] == picked


def test_regret_is_a_share_of_the_kinds_range_and_pools_kinds_alike():
    sc = {"last": np.array([0.0, 1.0, 2.0, 3.0]), "mean": np.array([3.0, 2.0, 1.0, 0.0])}
    outcomes = MarginOutcomes(
        margin={"a": np.array([1.0, 2.0, 3.0, 4.0]), "b": np.array([4.0, 3.0, 2.0, 1.0])},
        span={"a": 10.0, "b": 100.0},
    )
    rows = measure_seed(0, sc, {"rule": 1}, outcomes)
    got = {(r["method"], r["kind"]): r for r in rows}
    assert got[("last", "a")]["regret1"] == 0
    assert got[("last", "b")]["regret1"] == pytest.approx(0.03)
    assert got[("mean", "a")]["regret1"] == pytest.approx(0.3)
    assert got[("mean", "a")]["spearman"] == pytest.approx(-1)
    assert got[("rule", "a")]["regret1"] == pytest.approx(0.2)
    assert np.isnan(got[("rule", "a")]["spearman"])
    summary = {r["method"]: r for r in pooled(rows)}
    assert summary["last"]["regret1"] == pytest.approx(0.015)
    assert summary["mean"]["regret1"] == pytest.approx((0.3 + 0.0) / 2)
    assert summary["last"]["spearman"] == pytest.approx(0.0)


def test_missing_margins_say_which_command_writes_them(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(FileNotFoundError, match="--stress"):
        margin_outcomes(run, ("model_0",))


def test_explore_writes_one_row_per_seed_and_checkpoint(tmp_path):
    runs = {
        s: _run(tmp_path / f"s{s}", seed=s, kinds={"mass": [1, 2, 3, 4], "latency": [4, 3, 2, 1]})
        for s in (0, 1)
    }
    paths = explore(runs, tmp_path / "out", Console(quiet=True))
    rows = paths["candidates"].read_text().splitlines()
    assert rows[0].startswith("seed,checkpoint,iteration,last,mean")
    assert "margin[mass]" in rows[0]
    assert len(rows) == 1 + 2 * 4
    summary = paths["summary"].read_text()
    assert "regret1_s0" in summary
    assert "regret1_s1" in summary


def test_the_size_curve_at_full_size_is_the_full_measure_and_smaller_sizes_average_draws(tmp_path):
    run = _run(tmp_path, shift=(0.0, 0.004, 0.002, 0.001), seed=4)
    samples = from_stage(run)
    outcomes = MarginOutcomes(margin={"mass": np.array([1.0, 4.0, 3.0, 2.0])}, span={"mass": 10.0})
    rows = size_curve(0, samples, outcomes, sizes=(4, 16), draws=3)
    full = episode_samples(samples)
    expected = measure_seed(0, episode_scores(full, samples.iterations), evidence_picks(full), outcomes)
    at_full = [r for r in rows if r["size"] == 16]
    assert [r["method"] for r in at_full] == [r["method"] for r in expected]
    for got, want in zip(at_full, expected, strict=True):
        assert got["regret1"] == pytest.approx(want["regret1"])
        assert got["episodes"] == 32
    assert {r["size"] for r in rows} == {4, 16}
    with pytest.raises(ValueError, match="twin's samples have 16"):
        size_curve(0, samples, outcomes, sizes=(32,))


def test_dyn_scenarios_score_apart_and_leave_the_nominal_scores_as_they_were(tmp_path):
    from postconv.selection import worst_case

    shift = (0.0, 0.003, -0.002, 0.001)
    nominal = stage_samples(_run(tmp_path / "a", shift=shift))
    both = stage_samples(_run(tmp_path / "b", shift=shift, scenarios=(*SCENARIOS, "push_0.5_1-3s_dyn")))
    np.testing.assert_array_equal(both.episodes.psi, nominal.episodes.psi)
    assert nominal.dyn is None
    assert both.dyn.psi.shape == (4, 16)  # one scenario's 16 env slots
    sc = scores(both)
    pooled_psi = np.concatenate([both.episodes.psi, both.dyn.psi], axis=1)
    np.testing.assert_allclose(sc["wc[push+dyn,k=2]"], worst_case(pooled_psi, k=2.0).value, atol=1e-9)
    np.testing.assert_allclose(sc["wc[dyn,k=2]"], worst_case(both.dyn.psi, k=2.0).value, atol=1e-9)
    assert np.all(sc["sim_falls[dyn]"] <= 0)
    assert "evidence[wc[dyn,k=2],p=0.9]" in evidence_picks(both.episodes, dyn=both.dyn)
    # the stage, ranking every scenario, gives the same number
    config = StageConfig(report=False, wandb=False, selection=SelectionConfig(k=(2.0,), n_boot=0))
    staged = select_run(tmp_path / "b", config, Console(quiet=True)).pooled
    for i, c in enumerate(staged.checkpoints):
        assert sc["wc[push+dyn,k=2]"][i] == pytest.approx(c.worst_case[0], abs=1e-6)
