"""The select command end to end on a samples file: files on disk, table, errors."""

import json

import numpy as np
import pytest

from postconv.cli import main
from postconv.ranking.config import SelectionConfig
from postconv.ranking.select import select
from postconv.selection import SolverError
from postconv.storage.demo import demo_samples
from postconv.storage.file_source import NpzSource
from postconv.storage.samples_file import SampleSet, load_samples, save_samples


def test_samples_file_round_trips(tmp_path):
    original = demo_samples(seed=1)
    loaded = load_samples(save_samples(tmp_path / "s.npz", original))
    np.testing.assert_array_equal(loaded.psi, original.psi)
    np.testing.assert_array_equal(loaded.groups, original.groups)
    assert loaded.names == original.names
    assert loaded.sense == "reward"
    assert not list(tmp_path.glob(".*.tmp")), "atomic write leaves no temporary file"


def test_select_command_writes_results_and_prints_the_ranking(tmp_path, capsys):
    path = save_samples(tmp_path / "samples.npz", demo_samples(seed=2))
    assert main(["select", str(path), "--k", "1", "4", "--primary-k", "4", "--n-boot", "20"]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "selection.json").read_text())
    assert result["chosen"] in out
    assert "chosen checkpoint" in out
    ranks = [c["rank"][1] for c in result["checkpoints"]]
    assert sorted(ranks) == list(range(1, 7))
    best = min(result["checkpoints"], key=lambda c: c["rank"][1])
    assert best["name"] == result["chosen"]
    assert best["worst_case"][1] == max(c["worst_case"][1] for c in result["checkpoints"])
    assert all(c["worst_case"][1] <= c["mean"] for c in result["checkpoints"])
    csv_lines = (tmp_path / "selection.csv").read_text().splitlines()
    assert csv_lines[0].startswith("checkpoint,mean,mean_rank,worst_case_k1,worst_case_k4")
    assert csv_lines[0].endswith("p_beats_last_k1,p_beats_last_k4,p_beats_last_mean")
    assert len(csv_lines) == 7
    # the last checkpoint is the reference: no share against itself; the others have one
    *others, last = result["checkpoints"]
    assert last["p_beats_last"] is None
    assert all(0.0 <= c["p_beats_last"][1] <= 1.0 for c in others)
    assert "P(> last)" in out
    if result["chosen"] != last["name"]:  # --pick evidence says how sure, in its reason
        assert "beating the last checkpoint in" in " ".join(out.split())


def test_worst_case_selection_can_disagree_with_the_mean():
    # One checkpoint with the higher mean but rare catastrophic episodes.
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(50), 20)
    safe = 1.0 + rng.normal(0, 0.05, 1000)
    risky = 1.1 + rng.normal(0, 0.05, 1000)
    risky[groups < 1] = -2.0  # 1 of 50 episodes fails: mean 1.04 against 1.0
    result = select(
        SampleSet(psi=np.stack([safe, risky]), names=("safe", "risky"), groups=groups),
        SelectionConfig(k=(0.5, 2.0), primary_k=2.0, n_boot=50, pick="worst-case"),
    )
    assert result.chosen == result.chosen_by_worst_case == "safe"
    assert result.chosen_by_mean == "risky"


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros(3)}, "no 'psi' array"),
        ({"psi": np.zeros(3)}, "psi must be 2-D (checkpoints, samples); got shape (3,)"),
        ({"psi": np.zeros((2, 3)), "names": np.array(["a"])}, "1 names for 2 checkpoints in psi"),
        ({"psi": np.zeros((2, 3)), "names": np.array(["a", "a"])}, "checkpoint names repeat"),
        ({"psi": np.zeros((2, 3)), "groups": np.zeros(4)}, "groups has shape (4,); expected (3,) or (2, 3)"),
        ({"psi": np.zeros((2, 3)), "sense": np.asarray("loss")}, "sense is 'loss'; store 'reward'"),
        ({"psi": np.zeros((2, 3)), "weights": np.ones(3)}, "weights has shape (3,); expected (2, 3)"),
        ({"psi": np.array([["a", "b"]])}, "psi has dtype <U1; store numbers"),
    ],
)
@pytest.mark.parametrize("reader", [load_samples, NpzSource], ids=["loaded", "streamed"])
def test_bad_samples_files_are_named_with_the_problem(tmp_path, arrays, message, reader):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        reader(path)


def test_command_reports_errors_without_a_traceback(tmp_path, capsys):
    assert main(["select", str(tmp_path / "missing.npz")]) == 2
    assert "no such samples file" in capsys.readouterr().out
    path = save_samples(tmp_path / "s.npz", demo_samples())
    assert main(["select", str(path), "--k", "1", "2", "--primary-k", "4"]) == 2
    assert "--primary-k 4 is not in the k sweep [1.0, 2.0]" in capsys.readouterr().out
    assert main(["select", str(tmp_path / "no-run")]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "no-run: no such run folder or samples file; give a run folder evaluated before" in out
    assert "`postconv select --demo` writes one" in out
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["select", str(path), "--n-boot", "0", "--out", str(blocker / "results")]) == 2  # an OSError
    assert "a-file" in capsys.readouterr().out


def test_a_solver_failure_is_reported_without_a_traceback(tmp_path, capsys, monkeypatch):
    import postconv.ranking.select

    def fails(*args, **kwargs):  # stands in for samples the solver cannot handle (issue 15 has such data)
        raise SolverError(
            "the kl worst-case solver did not converge in 100 iterations for (checkpoint, k) pairs"
        )

    monkeypatch.setattr(postconv.ranking.select, "select", fails)
    path = save_samples(tmp_path / "s.npz", demo_samples())
    assert main(["select", str(path)]) == 2
    assert "error: the kl worst-case solver did not converge" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("samples", "k", "divergence", "expected"),
    [
        (16, 2.0, "kl", "the worst case may rest on the worst 3 of 16 samples per checkpoint"),
        (16, 4.0, "kl", "may rest on the single worst of 16 samples"),  # 16 e^-4 = 0.3
        (60, 2.0, "kl", "about 74 samples per checkpoint"),  # 10 e^2
        (80, 2.0, "kl", None),  # 80 e^-2 = 10.8 samples carry it
        (16, 2.0, "chi2", "may rest on the worst 4 of 16 samples"),  # 16 / (1 + 2k) = 3.2
        (50, 2.0, "chi2", None),  # 50 / 5 = 10 samples carry it
        (48, 6.0, "chi2", "about 130 samples per checkpoint"),  # 10 (1 + 2k)
    ],
)
def test_few_samples_are_flagged_below_ten_carrying_the_worst_case(
    samples, k, divergence, expected, tmp_path
):
    from postconv.review.console_report import few_samples_note, ranking_table
    from postconv.review.html_report import write_html_report

    psi = np.random.default_rng(0).normal(size=(3, samples))
    config = SelectionConfig(k=(k,), primary_k=k, divergence=divergence, n_boot=0)
    result = select(SampleSet(psi=psi, names=("a", "b", "c"), groups=np.arange(samples)), config)
    note = few_samples_note(result)
    if expected is None:
        assert note is None
        return
    assert expected in note
    assert "Few samples" in str(ranking_table(result).caption)
    page = write_html_report(tmp_path / "report.html", tmp_path, result, {}, []).read_text()
    assert "Few samples: at k =" in page
