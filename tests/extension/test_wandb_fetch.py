"""A run folder rebuilt from a W&B training run.

W&B's server cannot be reached from CI, so the remote run here is a small stand-in with the
interface of ``wandb.apis.public.Run`` (files with name, size and download; config; history)
over a local folder. The file names it serves are the ones the training hook uploads, which
tests/sim/test_hook.py checks against a real (offline) W&B run.
"""

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from postconv.dashboard.fetch import FetchError, fetch_run, parse_run_path
from postconv.dashboard.log import fetched_from
from postconv.storage.checkpoints import REWARD_TAG, choose_candidates, open_run, training_curve

AGENT = {"experiment_name": "g1_flat", "policy": {"actor_hidden_dims": [32, 32]}, "seed": 42}


@dataclass
class StandInFile:
    source: Path
    name: str
    downloads: list

    @property
    def size(self) -> int:
        return self.source.stat().st_size

    def download(self, root: str, replace: bool = False):
        target = Path(root) / self.name
        assert replace or not target.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.source, target)
        self.downloads.append(self.name)


@dataclass
class StandInRun:
    """W&B's public Run, served from a folder (what the hook uploaded) plus config and history."""

    folder: Path
    name: str = "2026-11-25_10-00-00"
    entity: str = "lab"
    project: str = "g1-sweeps"
    id: str = "abc123"
    config: dict = field(default_factory=lambda: {"train_cfg": AGENT, "log_dir": "/cluster/logs/x"})
    history: list = field(default_factory=list)
    downloads: list = field(default_factory=list)

    def files(self):
        names = sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if p.is_file())
        return [StandInFile(self.folder / n, n, self.downloads) for n in names]

    def scan_history(self, keys):
        return [row for row in self.history if all(k in row for k in keys)]


def _uploaded(tmp_path, with_params=True):
    folder = tmp_path / "uploaded"
    (folder / "params").mkdir(parents=True)
    for it in (0, 10, 20, 30):
        (folder / f"model_{it}.pt").write_bytes(bytes([it]) * (100 + it))
    if with_params:
        (folder / "params" / "agent.yaml").write_text(yaml.safe_dump(AGENT))
        (folder / "run.json").write_text('{"task": "PostConv-Velocity-Flat-G1"}')
    (folder / "requirements.txt").write_text("torch\n")  # uploaded by W&B itself, not part of a run folder
    (folder / "diff.patch").write_text("")
    return folder


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("me/g1-sweeps/abc123", "me/g1-sweeps/abc123"),
        ("https://wandb.ai/me/g1-sweeps/runs/abc123", "me/g1-sweeps/abc123"),
        ("https://wandb.ai/me/g1-sweeps/runs/abc123?nw=nwuserme", "me/g1-sweeps/abc123"),
        (" me/g1-sweeps/abc123/ ", "me/g1-sweeps/abc123"),
    ],
)
def test_run_paths_and_urls_name_the_same_run(text, path):
    assert parse_run_path(text) == path


@pytest.mark.parametrize("text", ["abc123", "me/abc123", "logs/rsl_rl/g1_flat/2026/x/y", ""])
def test_a_bad_run_path_says_which_forms_work(text):
    with pytest.raises(FetchError, match=r"is not a W&B run; pass ENTITY/PROJECT/RUN_ID or the run's URL"):
        parse_run_path(text)


def test_fetched_folder_is_the_run_folder_the_stage_reads(tmp_path):
    history = [{"_step": i, REWARD_TAG: float(min(i, 20))} for i in range(31)]
    remote = StandInRun(_uploaded(tmp_path), history=history)
    fetched = fetch_run(remote, root=tmp_path / "logs", progress=False)

    assert fetched.run_dir == tmp_path / "logs" / "g1_flat" / "2026-11-25_10-00-00"
    run = open_run(fetched.run_dir)
    assert [c.iteration for c in run.checkpoints] == [0, 10, 20, 30]
    for c in run.checkpoints:
        assert c.path.read_bytes() == (remote.folder / c.path.name).read_bytes()
    assert run.task == "PostConv-Velocity-Flat-G1"
    assert run.agent_cfg == AGENT
    assert not (fetched.run_dir / "requirements.txt").exists()
    # the curve survives the trip, so the candidates are the same as on the original folder
    iterations, values = training_curve(run)
    assert iterations.tolist() == list(range(31))
    assert values.tolist() == [min(i, 20) for i in range(31)]
    chosen, reason, _ = choose_candidates(run)
    assert [c.iteration for c in chosen] == [20, 30]
    assert "after convergence" in reason
    assert (fetched.checkpoints, fetched.downloaded, fetched.curve_points) == (4, 6, 31)
    # the selection's W&B run goes where the training run is
    assert fetched_from(fetched.run_dir) == {
        "entity": "lab",
        "project": "g1-sweeps",
        "path": "lab/g1-sweeps/abc123",
    }


def test_fetch_again_downloads_only_what_is_missing_or_truncated(tmp_path):
    remote = StandInRun(_uploaded(tmp_path))
    first = fetch_run(remote, root=tmp_path / "logs", progress=False)
    truncated = first.run_dir / "model_20.pt"
    truncated.write_bytes(truncated.read_bytes()[:7])  # an interrupted download
    (first.run_dir / "model_30.pt").unlink()
    remote.downloads.clear()

    again = fetch_run(remote, root=tmp_path / "logs", progress=False)
    assert sorted(remote.downloads) == ["model_20.pt", "model_30.pt"]
    assert again.downloaded == 2
    assert truncated.read_bytes() == (remote.folder / "model_20.pt").read_bytes()


def test_runs_from_rsl_rls_own_writer_get_agent_yaml_from_the_config(tmp_path):
    remote = StandInRun(_uploaded(tmp_path, with_params=False))
    fetched = fetch_run(remote, root=tmp_path / "logs", task="PostConv-Velocity-Rough-G1", progress=False)
    run = open_run(fetched.run_dir)
    assert run.agent_cfg == AGENT
    assert run.task == "PostConv-Velocity-Rough-G1"
    assert training_curve(run) is None
    assert fetched.curve_points == 0


def test_a_run_without_checkpoints_says_how_to_upload_them(tmp_path):
    folder = _uploaded(tmp_path)
    for p in folder.glob("model_*.pt"):
        p.unlink()
    with pytest.raises(FetchError, match=r"holds no model_<iter>.pt files; train with rsl_rl's W&B writer"):
        fetch_run(StandInRun(folder), root=tmp_path / "logs", progress=False)


def test_a_run_without_any_runner_config_names_what_is_missing(tmp_path):
    remote = StandInRun(_uploaded(tmp_path, with_params=False), config={})
    with pytest.raises(FetchError, match=r"neither params/agent.yaml nor a train_cfg in its config"):
        fetch_run(remote, root=tmp_path / "logs", progress=False)


def test_unsafe_run_names_stay_inside_the_logs_folder(tmp_path):
    remote = StandInRun(_uploaded(tmp_path), name="../../etc/evil run")
    fetched = fetch_run(remote, root=tmp_path / "logs", progress=False)
    assert fetched.run_dir.resolve().is_relative_to((tmp_path / "logs").resolve())
    assert len(list(fetched.run_dir.glob("model_*.pt"))) == 4
