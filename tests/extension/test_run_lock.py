"""One stage per run folder: a second process is refused at once and told who holds the run,
a dead holder never blocks, and two writers of one sample set never share a partial folder.

The holder is a real second Python process taking the real lock; the sample writers write
synthetic arrays (the rollouts are tested in tests/sim)."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from postconv.cli import main
from postconv.storage.run_lock import RunBusyError, run_lock
from postconv.storage.sample_store import SampleWriter, is_complete, remove_partials, sample_dir

HOLD = textwrap.dedent(
    """
    import sys, time
    from postconv.storage.run_lock import run_lock
    with run_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
    """
)


@pytest.fixture
def holder(tmp_path):
    """A second process holding the lock of ``tmp_path/run/postconv``."""
    stage_dir = tmp_path / "run" / "postconv"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(stage_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield proc, stage_dir
    proc.kill()
    proc.wait()


def test_a_second_stage_is_refused_at_once_naming_the_process_that_holds_the_run(holder, capsys):
    proc, stage_dir = holder
    with (
        pytest.raises(RunBusyError, match=f"already running on this run folder \\(pid {proc.pid} on "),
        run_lock(stage_dir),
    ):
        pass
    (stage_dir / "evaluation.json").write_text(json.dumps({"sample_sets": []}))
    assert main(["select", str(stage_dir.parent), "--n-boot", "0"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert f"pid {proc.pid}" in out
    assert "wait for it to finish or stop it" in out


def test_the_lock_of_a_killed_process_does_not_block(holder):
    proc, stage_dir = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (stage_dir / ".lock").exists()  # the file stays; the kernel dropped the lock with its process
    with run_lock(stage_dir):
        info = json.loads((stage_dir / ".lock").read_text())
    assert info["pid"] == os.getpid()


def test_nested_use_in_one_process_takes_the_lock_once(tmp_path):
    with run_lock(tmp_path), run_lock(tmp_path):  # run_stage holds it around evaluate and select_run
        pass
    with run_lock(tmp_path):  # and it was released
        pass


def _arrays(value: float, steps=4, envs=2) -> dict[str, np.ndarray]:
    return {"terms": np.full((steps, envs, 1), value), "psi": np.full((steps, envs), value),
            "features": np.zeros((steps, envs, 1)), "episode": np.zeros((steps, envs)),
            "terminated": np.zeros((steps, envs), bool), "truncated": np.zeros((steps, envs), bool)}  # fmt: skip


def test_two_writers_of_one_sample_set_never_share_or_delete_each_others_partial_folder(tmp_path):
    folder = sample_dir(tmp_path, "push", "model_10", 0)
    first = SampleWriter(folder, 4, 2, 1, 1)
    second = SampleWriter(folder, 4, 2, 1, 1)  # e.g. a Ray job retried while its first worker still runs
    assert first.partial != second.partial
    assert first.partial.is_dir()
    assert second.partial.is_dir()
    first.write(0, _arrays(1.0))
    first.finish({"key": "a"})
    assert is_complete(folder, "a")
    np.testing.assert_array_equal(np.load(folder / "psi.npy"), 1.0)
    second.write(0, _arrays(2.0))
    second.finish({"key": "a"})
    assert is_complete(folder, "a")
    np.testing.assert_array_equal(np.load(folder / "psi.npy"), 2.0)  # whole, never a mix
    assert not list(folder.parent.glob(".*partial*"))


def test_leftover_partial_folders_are_removed_and_complete_ones_kept(tmp_path):
    done = SampleWriter(sample_dir(tmp_path, "push", "model_10", 0), 4, 2, 1, 1)
    done.write(0, _arrays(1.0))
    done.finish({"key": "a"})
    SampleWriter(sample_dir(tmp_path, "push", "model_20", 0), 4, 2, 1, 1)  # killed before it finished
    assert remove_partials(tmp_path) == 1
    assert is_complete(sample_dir(tmp_path, "push", "model_10", 0), "a")
    assert not list(tmp_path.glob("*/*/.*partial*"))
