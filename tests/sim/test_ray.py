"""The evaluation on a local Ray cluster (2 CPU workers): the same samples and rankings as in
one process, and a worker killed during its job costs a retry, nothing else."""

import json
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import HAS_SIM
from probes import (
    ONE_BY_ONE,
    assert_ok,
    assert_resumes,
    assert_same_samples,
    assert_untouched,
    copy_run,
    finished_sets,
    interrupt,
    postconv,
    start_evaluation,
    wait_until,
)

if not HAS_SIM:
    pytest.skip("Isaac Lab not installed (bash scripts/setup.sh installs it)", allow_module_level=True)

from postconv.stage.config import StageConfig
from postconv.stage.run import select_run
from postconv.storage.sample_store import samples_root

pytestmark = pytest.mark.needs_sim
# 6 jobs (3 checkpoints x 2 scenarios) for 2 workers, each worker with an env of the
# reference's size, so the numbers must match it to the bit
ON_RAY = [*ONE_BY_ONE, "--ray", "--ray-workers", "2"]
WORKER_RUNNING_A_JOB = "ray::EvalWorker.run"


def _pids_titled(title: str) -> list[int]:
    """Processes whose title (Ray sets it to the method a worker is running) starts with ``title``."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(title.encode()):
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue  # the process ended while we looked
    return pids


def test_workers_fit_the_clusters_slots_and_the_jobs():
    import ray

    from postconv.evaluation.ray_eval import worker_slots

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        assert worker_slots("cpu", None, jobs=10) == 2
        assert worker_slots("cpu", 8, jobs=10) == 2  # an actor beyond the slots would never start
        assert worker_slots("cpu", None, jobs=1) == 1
        with pytest.raises(
            ValueError, match=r"the Ray cluster has no GPU for --device cuda:0; add GPU nodes"
        ):
            worker_slots("cuda:0", None, jobs=10)
    finally:
        ray.shutdown()


def _rankings(run: Path) -> dict:
    result = select_run(run, StageConfig(report=False))
    return {"pooled": asdict(result.pooled), **{s: asdict(r) for s, r in result.by_scenario.items()}}


@pytest.mark.parametrize(
    "transfer",
    [[], ["--ray-ship"]],
    ids=["shared-file-system", "through-the-object-store"],
)
def test_two_ray_workers_give_the_samples_and_rankings_of_one_process(
    trained_run, one_by_one, tmp_path, transfer
):
    run = copy_run(trained_run, tmp_path)
    proc = postconv("evaluate", str(run), *ON_RAY, *transfer)
    assert_ok(proc)
    assert "evaluating 6 jobs on Ray with 2 workers (CPU each)" in proc.stdout
    assert_same_samples(run, one_by_one)
    evaluation = json.loads((run / "postconv" / "evaluation.json").read_text())
    assert evaluation["ray"] == {"workers": 2, "retries": 0, "failed_jobs": 0}
    assert evaluation["sample_sets_written"] == 6
    assert _rankings(run) == _rankings(one_by_one)  # the same numbers, not merely the same order
    for meta in samples_root(run).glob("*/*/seed_*/meta.json"):  # where the checkpoint is on this machine
        checkpoint = json.loads(meta.read_text())["checkpoint"]
        assert checkpoint["path"] == str(run / f"{checkpoint['name']}.pt")


def test_a_worker_killed_during_its_job_is_replaced_and_the_job_retried(trained_run, one_by_one, tmp_path):
    run = copy_run(trained_run, tmp_path)
    proc = start_evaluation(run, ON_RAY)
    # a job has finished and a worker is inside its next one: kill that worker
    wait_until(
        proc, lambda: finished_sets(run) and _pids_titled(WORKER_RUNNING_A_JOB), "a worker in its 2nd job"
    )
    done = finished_sets(run)
    os.kill(_pids_titled(WORKER_RUNNING_A_JOB)[0], signal.SIGKILL)
    output = proc.communicate(timeout=600)[0]

    assert proc.returncode == 0, output[-3000:]
    assert "worker died" in output
    assert "retrying (1 of 2)" in output
    evaluation = json.loads((run / "postconv" / "evaluation.json").read_text())
    assert evaluation["ray"]["retries"] == 1
    assert evaluation["ray"]["failed_jobs"] == 0
    assert evaluation["skipped"] == {}
    assert_untouched(done)  # finished before the kill: never redone
    assert not list(samples_root(run).glob("*/*/.*.partial*")), "the dead worker's partial folder was left"
    assert_same_samples(run, one_by_one)


def test_ctrl_c_stops_the_workers_and_the_same_command_resumes(trained_run, one_by_one, tmp_path):
    run = copy_run(trained_run, tmp_path)
    proc = start_evaluation(run, ON_RAY)
    wait_until(proc, lambda: finished_sets(run), "the first sample set")
    interrupt(proc)
    gone_by = time.time() + 15  # the local cluster's processes end just after the driver
    while _pids_titled("ray::EvalWorker") and time.time() < gone_by:
        time.sleep(0.2)
    assert not _pids_titled("ray::EvalWorker"), "a worker outlived the interrupted evaluation"
    done = finished_sets(run)
    assert 1 <= len(done) < 6
    assert_resumes(run, ON_RAY, done, one_by_one)
