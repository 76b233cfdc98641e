"""Real-robot outcomes: bad rows named, agreement computed per predictor, the W&B run joined.

The selection here comes from `postconv.ranking.select.select` on synthetic samples (the
simulator is not what these tests are about)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from postconv.ranking.config import SelectionConfig
from postconv.ranking.result import SelectionResult
from postconv.ranking.select import select
from postconv.review.outcomes import best_k_line, judge_picks, pick_outcome_lines, read_outcomes, score
from postconv.storage.samples_file import SampleSet

NAMES = ["model_10", "model_20", "model_30", "model_40"]


@pytest.fixture(scope="module")
def selection() -> SelectionResult:
    rng = np.random.default_rng(0)
    # model_40 has the best mean but a heavy lower tail; model_30 is steady
    psi = rng.normal(size=(4, 2000)) * np.array([[1.0], [1.0], [0.3], [3.0]]) + np.array(
        [[0.0], [0.2], [0.4], [0.6]]
    )
    samples = SampleSet(psi=psi, names=tuple(NAMES), groups=np.arange(2000) // 20)
    return select(samples, SelectionConfig(n_boot=0))


def _csv(tmp_path, text: str) -> Path:
    path = tmp_path / "robot.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,success\nmodel_10,1\n", "no 'checkpoint' column; the header is ['name', 'success']"),
        ("checkpoint,trial\nmodel_10,1\n", "no metric columns besides checkpoint/trial"),
        (
            "checkpoint,success\nmodel_99,1\n",
            "line 2: checkpoint 'model_99' was not ranked (ranked: model_10,",
        ),
        (
            "checkpoint,success\nmodel_10,high\n",
            "line 2: success = 'high' is not a number (write a number, or leave",
        ),
        ("checkpoint,success\nmodel_10,nan\n", "line 2: success = 'nan' is not finite"),
        (
            "checkpoint,trial,success\nmodel_10,1,1\nmodel_10,1,0\n",
            "line 3: checkpoint 'model_10' trial '1' repeats line 2",
        ),
        (
            "checkpoint,success\nmodel_10,1\nmodel_10,0\n",
            "outcomes for 1 checkpoint(s); comparing rankings needs at least 2",
        ),
        (
            "checkpoint,success,falls\nmodel_10,1,\nmodel_20,0,3\n",
            "metrics with values for fewer than 2 checkpoints: falls (1); fill them in or leave those columns out",
        ),
    ],
)
def test_bad_outcome_files_are_named_with_the_row_and_the_fix(tmp_path, text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        read_outcomes(_csv(tmp_path, text), NAMES)


def test_every_bad_row_is_listed_at_once(tmp_path):
    text = "checkpoint,success\nmodel_99,1\nmodel_10,x\nmodel_20,1\n"
    with pytest.raises(ValueError, match=r"2 bad rows:\n  line 2: .*\n  line 3: "):
        read_outcomes(_csv(tmp_path, text), NAMES)


def test_trials_are_averaged_and_lower_is_better_metrics_kept_as_recorded(tmp_path):
    text = "checkpoint,success,falls\nmodel_10,1,2\nmodel_10,0,4\nmodel_20,1,0\n"
    real = read_outcomes(_csv(tmp_path, text), NAMES, lower_is_better=("falls",))
    assert real.means["success"] == {"model_10": 0.5, "model_20": 1.0}
    assert real.means["falls"] == {"model_10": 3.0, "model_20": 0.0}  # what the robot did
    assert real.better("falls") == {"model_10": -3.0, "model_20": 0.0}  # how the judgement ranks it
    assert real.trials == {"model_10": 2, "model_20": 1}


def test_a_spreadsheets_csv_and_a_trial_without_some_metric_are_read(tmp_path):
    # Excel's UTF-8 CSV starts with a byte-order mark and ends lines with CRLF; trial 2 of model_10
    # has no falls recorded, and a trial without its number is no repeat
    text = "\ufeffcheckpoint,trial,success,falls\r\nmodel_10,1,1,2\r\nmodel_10,2,0,\r\nmodel_20,,1,0\r\nmodel_20,,0,1\r\n"
    path = tmp_path / "robot.csv"
    path.write_bytes(text.encode("utf-8"))
    real = read_outcomes(path, NAMES, lower_is_better=("falls",))
    assert real.means == {
        "success": {"model_10": 0.5, "model_20": 0.5},
        "falls": {"model_10": 2.0, "model_20": 0.5},
    }
    assert real.trials == {"model_10": 2, "model_20": 2}


def test_a_checkpoint_the_selection_skipped_is_named_with_its_reason(tmp_path):
    text = "checkpoint,success\nmodel_50,1\nmodel_10,1\nmodel_20,0\n"
    with pytest.raises(
        ValueError,
        match=re.escape("line 2: checkpoint 'model_50' was not ranked (NaN or inf in its weights)"),
    ):
        read_outcomes(_csv(tmp_path, text), NAMES, skipped={"model_50": "NaN or inf in its weights"})


@pytest.mark.parametrize("pick", ["evidence", "last"])
def test_each_pick_is_judged_by_what_it_did_or_said_to_be_untried(tmp_path, pick):
    rng = np.random.default_rng(0)
    psi = rng.normal(size=(4, 2000)) * np.array([[1.0], [1.0], [0.3], [3.0]]) + np.array(
        [[0.0], [0.2], [0.4], [0.6]]
    )
    chosen = select(SampleSet(psi=psi, names=tuple(NAMES), groups=np.arange(2000) // 20),
                    SelectionConfig(n_boot=50, pick=pick))  # fmt: skip
    text = "checkpoint,success,falls\nmodel_10,0.2,3\nmodel_20,0.5,1\nmodel_40,0.9,0\n"  # model_30 not tried
    picks = judge_picks(chosen, read_outcomes(_csv(tmp_path, text), NAMES, lower_is_better=("falls",)))
    # evidence: the steady model_30 beats the last in >= 0.9 of the replicates; last: model_40
    assert chosen.chosen == {"evidence": "model_30", "last": "model_40"}[pick]
    (first,) = [p for p in picks["success"] if "chosen" in p["roles"]]
    if pick == "last":  # tried: the best of those tried
        assert (first["checkpoint"], first["tried"], first["outcome"], first["regret"]) == (
            "model_40",
            True,
            0.9,
            0.0,
        )
    else:
        assert (first["checkpoint"], first["tried"], first["outcome"], first["regret"]) == (
            "model_30",
            False,
            None,
            None,
        )
        assert "success: chosen model_30: not tried" in " ".join(pick_outcome_lines(picks))
    falls = {p["checkpoint"]: p for p in picks["falls"]}
    assert falls["model_40"]["regret"] == 0.0  # no falls is the best there is
    mean_pick = next(p for p in picks["falls"] if "mean's pick" in p["roles"])
    assert mean_pick["regret"] == (0.0 if mean_pick["checkpoint"] == "model_40" else None)


def test_radii_that_rank_the_tried_checkpoints_alike_are_not_called_a_winner():
    assert best_k_line("success", {"k": 1.0, "stability": 0.25, "tied": True}) == (
        "success: no k predicts better than another (every radius ranks the tried checkpoints alike)"
    )
    assert "k = 2 predicts best" in best_k_line("success", {"k": 2.0, "stability": 0.75, "tied": False})


def test_outcomes_that_follow_the_worst_case_score_it_above_the_mean(selection, tmp_path):
    # the robot rewards steadiness: the real order is the worst-case order at the primary k
    p = selection.config.primary_index
    order = sorted(selection.checkpoints, key=lambda c: c.worst_case[p])
    text = "checkpoint,success\n" + "".join(f"{c.name},{i}\n" for i, c in enumerate(order))
    rows, best = score(selection, read_outcomes(_csv(tmp_path, text), NAMES))
    by = {r.predictor: r for r in rows}
    assert by[f"k={selection.config.primary_k:g}"].spearman == pytest.approx(1.0)
    assert by[f"k={selection.config.primary_k:g}"].regret_1 == 0.0
    assert by["mean"].spearman < 1.0
    assert by["mean"].regret_1 > 0.0
    assert best["success"]["k"] in selection.config.k


def test_the_cli_writes_results_and_joins_the_selections_offline_wandb_run(selection, tmp_path, monkeypatch):
    from postconv.dashboard.log import log_selection
    from postconv.ranking.result import write_results

    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = tmp_path / "2026-01-01_00-00-00"
    write_results(selection, run_dir / "postconv")
    log_selection(run_dir, {}, selection, {}, {n: i for i, n in enumerate(NAMES)}, [], {"task": "t"}, [])
    csv_path = _csv(tmp_path, "checkpoint,success\n" + "".join(f"{n},{i % 3}\n" for i, n in enumerate(NAMES)))
    env = {**os.environ, "WANDB_MODE": "offline"}
    proc = subprocess.run(
        [sys.executable, "-m", "postconv.cli", "outcomes", str(run_dir), str(csv_path)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((run_dir / "postconv" / "outcomes.json").read_text())
    assert {s["predictor"] for s in data["scores"]} == {"mean", "k=1", "k=2", "k=4", "k=6"}
    assert "added to the offline W&B run" in proc.stdout
    logs = sorted((run_dir / "postconv" / "wandb").glob("offline-run-*/run-*.wandb"))
    wandb_cli = str(Path(sys.executable).with_name("wandb"))
    summary = json.loads(
        subprocess.run(
            [wandb_cli, "leet", "inspect", "--summary", "--json", str(logs[-1])],
            capture_output=True,
            text=True,
        ).stdout
    )["summary"]
    if data["best_k"]["success"]["tied"]:  # a winner among tied radii would be made up
        assert "outcomes/best_k/success" not in summary
    else:
        assert summary["outcomes/best_k/success"] == data["best_k"]["success"]["k"]
    # the recommended checkpoint (the last, no bootstrap) was tried: what it lost is on W&B
    (first, *_) = data["picks"]["success"]
    assert (first["checkpoint"], first["tried"]) == (selection.chosen, True)
    assert summary["outcomes/chosen_regret/success"] == first["regret"]
    assert "outcomes/table" in summary
