"""The baselines beside the worst case: each checkpoint's training reward and simulation falls,
and the checkpoint each rule a user has without the worst case picks.

The run folder is made here without a simulator: empty checkpoint files (nothing loads
them), sample folders written by the store's own writer with falls placed by hand, and a
TensorBoard event file written by torch's writer (what rsl_rl logs through)."""

from dataclasses import replace

import numpy as np
import pytest
from torch.utils.tensorboard import SummaryWriter

from postconv.ranking.baselines import (
    BASELINES_FILE,
    baselines_of,
    read_baselines,
    write_baselines,
)
from postconv.ranking.config import SelectionConfig
from postconv.ranking.select import select
from postconv.review.console_report import rules_line
from postconv.review.html_report import write_html_report
from postconv.storage.checkpoints import open_run, training_curve
from postconv.storage.sample_store import SampleWriter, find_samples, sample_dir, to_sample_set

ITERATIONS = (100, 110, 120, 130)
FALLS = {"no_push": (3, 0, 0, 2), "push": (4, 1, 1, 5)}
"""Falls per checkpoint and scenario: the middle two tie for the fewest."""
STEPS, ENVS = 20, 4


def _run(tmp_path, curve: bool = True):
    run = tmp_path / "run"
    (run / "params").mkdir(parents=True)
    (run / "params" / "agent.yaml").write_text("actor: {}\n")
    root = run / "postconv" / "samples"
    rng = np.random.default_rng(0)
    for c, it in enumerate(ITERATIONS):
        name = f"model_{it}"
        (run / f"{name}.pt").write_bytes(b"")
        for scenario, falls in FALLS.items():
            terminated = np.zeros((STEPS, ENVS), bool)
            terminated.flat[rng.choice(STEPS * ENVS, falls[c], replace=False)] = True
            episode = np.cumsum(terminated, axis=0).astype(np.int32) - terminated
            psi = (0.5 + 0.1 * c + 0.05 * rng.standard_normal((STEPS, ENVS))).astype(np.float32)
            writer = SampleWriter(sample_dir(root, scenario, name, 0), STEPS, ENVS, 1, 1)
            writer.write(0, {"terms": psi[..., None], "psi": psi, "features": np.zeros((STEPS, ENVS, 1)),
                             "episode": episode, "terminated": terminated,
                             "truncated": np.zeros((STEPS, ENVS), bool)})  # fmt: skip
            writer.finish({"key": "k", "checkpoint": {"name": name, "iteration": it},
                           "reward_terms": ["alive"], "feature_names": ["h"],
                           "spec": {"burn_in_steps": 0}, "age_at_start": 0})  # fmt: skip
    if curve:
        tb = SummaryWriter(str(run))
        for step in range(0, 131):
            # a curve that peaks at iteration 110: the training reward's pick
            tb.add_scalar("Train/mean_reward", 10.0 - abs(step - 110) * 0.1, step)
        tb.close()
    index = find_samples(run)
    iterations = {f"model_{it}": it for it in ITERATIONS}
    sample_set, _ = to_sample_set(index, tuple(FALLS), tuple(iterations), unit="episode")
    result = replace(select(sample_set, SelectionConfig(n_boot=20)), scenarios=list(FALLS))
    return run, index, result, iterations


def test_falls_and_training_reward_are_counted_per_checkpoint(tmp_path):
    run, index, result, iterations = _run(tmp_path)
    baselines = baselines_of(training_curve(open_run(run)), index, result, iterations)
    assert baselines.names == tuple(iterations)
    np.testing.assert_array_equal(baselines.falls, [3 + 4, 0 + 1, 0 + 1, 2 + 5])
    # the mean of the ten logged iterations up to each checkpoint: steps it-9 .. it
    expected = [np.mean([10.0 - abs(s - 110) * 0.1 for s in range(it - 9, it + 1)]) for it in ITERATIONS]
    np.testing.assert_allclose(baselines.train_reward, expected, rtol=1e-6)


def test_each_rule_picks_its_best_and_ties_go_to_the_latest(tmp_path):
    run, index, result, iterations = _run(tmp_path)
    picks = {
        p.key: p for p in baselines_of(training_curve(open_run(run)), index, result, iterations).picks(result)
    }
    assert picks["worst_case"].checkpoint == result.chosen_by_worst_case
    assert picks["mean"].checkpoint == result.chosen_by_mean
    assert picks["last"].checkpoint == "model_130"
    assert picks["train_reward"].checkpoint == "model_110"  # its window (101-110) is the highest
    assert (picks["falls"].checkpoint, picks["falls"].tied) == ("model_120", 2)
    line = rules_line(list(picks.values()))
    assert "fewest simulation falls model_120 (2 tied, the latest)" in line
    assert "worst case" not in line  # it has a line of its own


def test_without_a_training_curve_that_rule_says_so(tmp_path):
    run, index, result, iterations = _run(tmp_path, curve=False)
    baselines = baselines_of(training_curve(open_run(run)), index, result, iterations)
    assert baselines.train_reward is None
    picks = baselines.picks(result)
    assert next(p for p in picks if p.key == "train_reward").checkpoint is None
    assert "training reward: none (no training curve)" in rules_line(picks)


@pytest.mark.parametrize("curve", [True, False], ids=["curve", "no-curve"])
def test_the_file_reads_back_and_the_report_shows_both_tables(tmp_path, curve):
    run, index, result, iterations = _run(tmp_path, curve=curve)
    baselines = baselines_of(training_curve(open_run(run)), index, result, iterations)
    path = write_baselines(tmp_path / BASELINES_FILE, baselines, result)
    again = read_baselines(path, result)
    assert again.names == baselines.names
    np.testing.assert_array_equal(again.falls, baselines.falls)
    np.testing.assert_array_equal(again.iterations, baselines.iterations)
    if curve:
        np.testing.assert_allclose(again.train_reward, baselines.train_reward)
    else:
        assert again.train_reward is None
    assert read_baselines(tmp_path / "absent.csv", result) is None
    page = write_html_report(tmp_path / "report.html", run, result, {}, [], baselines=again).read_text()
    assert "What other rules pick" in page
    falls_pick = next(p for p in baselines.picks(result) if p.key == "falls")
    assert (
        f"<td>fewest simulation falls</td><td>{falls_pick.checkpoint}</td><td>2 tied, the latest</td>" in page
    )
    for name, falls in zip(baselines.names, baselines.falls, strict=True):
        assert f"<td>{name}</td><td>{ITERATIONS[baselines.names.index(name)]}</td>" in page
        assert f"<td>{falls}</td>" in page


def test_a_file_written_for_another_ranking_is_not_shown(tmp_path):
    # the selection reran without a review (select --no-report): the old rows must not pass as its
    _, index, result, iterations = _run(tmp_path)
    path = write_baselines(tmp_path / BASELINES_FILE, baselines_of(None, index, result, iterations), result)
    fewer = replace(result, checkpoints=result.checkpoints[:-1])
    assert read_baselines(path, fewer) is None
    # the same checkpoints re-evaluated on other samples (another seed): their falls are stale too
    other = replace(result, checkpoints=[replace(c, mean=c.mean + 1e-9) for c in result.checkpoints])
    assert read_baselines(path, other) is None
    assert read_baselines(path, result) is not None


def test_without_a_bootstrap_the_report_has_no_p_beats_last_column(tmp_path):
    run, index, result, iterations = _run(tmp_path)
    plain = replace(result, config=replace(result.config, n_boot=0))
    plain = replace(plain, checkpoints=[replace(c, p_beats_last=None) for c in plain.checkpoints])
    baselines = baselines_of(None, index, plain, iterations)
    page = write_html_report(tmp_path / "report.html", run, plain, {}, [], baselines=baselines).read_text()
    section = page[page.index("What other rules pick") :]
    assert "<th>falls</th>" in section
    assert "P(&gt; last)" not in section
