"""The evaluation jobs of a run on a Ray cluster: one worker per GPU (or CPU slot), one simulation each.

A worker is a Ray actor holding one :class:`~postconv.evaluation.rollout.Evaluator` (Isaac Lab keeps one
simulation per process, so the env is built once per worker and reused for all its jobs).
The driver hands each idle worker the next :class:`~postconv.evaluation.rollout.EvalJob`; a job's
result is its sample folders, written by the worker where the single-machine path writes
them, so the selection that follows cannot tell the difference: same seeds, same common
random numbers, same numbers (every worker's env has the same size).

Faults: a worker that dies during a job (killed, out of memory, node lost) is replaced
and the job retried, up to ``retries`` times, then its checkpoints are reported as skipped
with the reason. Completed sample folders are never redone (the job's ``todo()`` skips
them) and a dead worker's partial folders never count (they are only renamed into place
when complete). Ctrl-C kills the workers and leaves the run resumable. An exception raised
by the evaluation itself is a bug or a bad input, not a fault: it stops the evaluation.

Workers read the checkpoints and write the samples at the run folder's path (a shared file
system, or one machine); with ``ship`` they need no shared file system: the checkpoints go
to them and the sample folders come back through Ray's object store, and the driver writes
them into the run folder as a local evaluation would. Workers need postconv with Isaac Lab
installed, as on the driver.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console

from postconv import interrupt
from postconv.evaluation.rollout import EvalJob, JobResult, env_steps_bar
from postconv.storage.sample_store import folder_files, publish_folder

INSTALL_HINT = "install Ray for --ray: pip install 'postconv[ray]' (or pip install ray)"
PROGRESS_EVERY_S = 0.5
"""How often a worker reports its env steps to the cluster-wide progress bar."""


def import_ray():
    try:
        import ray
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"Ray is not installed; {INSTALL_HINT}") from err
    return ray


def describe(job: EvalJob) -> str:
    """A job by name: its scenario, checkpoints and seeds."""
    seeds = ",".join(str(s) for s in job.seeds)
    return f"{job.scenario.name} x {', '.join(c.name for c in job.checkpoints)} (seed {seeds})"


@dataclass
class ClusterRun:
    """What the cluster did, beyond the jobs' own results."""

    workers: int = 0
    retries: int = 0
    """Jobs started again after their worker died."""
    failed: list[tuple[EvalJob, str]] = field(default_factory=list)
    """Jobs given up, with why."""
    seconds: float = 0.0


@contextlib.contextmanager
def connected(address: str | None):
    """Inside: joined to the cluster at ``address`` (``auto``, ``HOST:PORT``, ``ray://...``) or,
    with ``local`` or None, to one started on this machine (Ray's ``RAY_ADDRESS`` wins when
    set). A cluster started here is shut down on exit; one joined is left running."""
    ray = import_ray()
    if ray.is_initialized():
        yield
        return
    ray.init(
        address=None if address in (None, "", "local") else address,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,  # Isaac Lab's build logs from every worker would bury the progress bar
    )
    try:
        yield
    finally:
        ray.shutdown()


def worker_slots(device: str, requested: int | None, jobs: int) -> int:
    """Workers to start: one per GPU (``cuda`` devices) or per CPU of the cluster, at most as
    many as asked and as there are jobs (a worker beyond the cluster's slots would never start,
    and the jobs handed to it would wait forever)."""
    ray = import_ray()
    resources = ray.cluster_resources()
    kind = "GPU" if device.startswith("cuda") else "CPU"
    available = int(resources.get(kind, 0))
    if available < 1:
        raise ValueError(
            f"the Ray cluster has no {kind} for --device {device}; add {kind} nodes or pick another --device"
        )
    return max(1, min(requested or available, available, jobs))


def _remote_classes():
    """The actor classes, defined once Ray is imported (postconv imports without Ray)."""
    ray = import_ray()
    if hasattr(_remote_classes, "cache"):
        return _remote_classes.cache

    @ray.remote
    class Progress:
        """Env steps done per job, summed for the driver's one progress bar."""

        def __init__(self):
            self.steps: dict[int, int] = {}

        def add(self, job: int, steps: int) -> None:
            self.steps[job] = self.steps.get(job, 0) + steps

        def forget(self, job: int) -> None:
            self.steps.pop(job, None)

        def total(self) -> int:
            return sum(self.steps.values())

    @ray.remote(max_restarts=0, max_task_retries=0)
    class EvalWorker:
        """One simulation, evaluating the jobs it is handed."""

        def __init__(self, buffer_bytes: int, progress):
            from postconv.evaluation.rollout import Evaluator

            self.evaluator = Evaluator(buffer_bytes=buffer_bytes)
            self.progress = progress

        def run(self, index: int, job: EvalJob, shipped: dict | None = None):
            """Evaluate ``job``; with ``shipped`` (checkpoint name -> its bytes in the object
            store) in a scratch folder, returning the sample folders' files with the result."""
            report = _Batched(lambda n: self.progress.add.remote(index, n))
            job = on_visible_gpu(job)
            try:
                if shipped is None:
                    return self.evaluator.run(job, on_steps=report)
                with tempfile.TemporaryDirectory(prefix="postconv-job-") as scratch:
                    local = _localized(
                        job, Path(scratch), {name: ray.get(ref) for name, ref in shipped.items()}
                    )
                    result = self.evaluator.run(local, on_steps=report)
                    # a skipped checkpoint's reason names the run's file, not the scratch copy
                    paths = {
                        c.name: (s.path, c.path)
                        for s, c in zip(local.checkpoints, job.checkpoints, strict=True)
                    }
                    result.skipped = {name: why.replace(*paths[name]) for name, why in result.skipped.items()}
                    root = Path(local.samples_root)
                    files = {str(f.relative_to(root)): folder_files(f) for f in result.written}
                    return Shipped(result, files)
            finally:
                report.flush()

        def pid(self) -> int:
            return os.getpid()

    _remote_classes.cache = (Progress, EvalWorker)
    return _remote_classes.cache


@dataclass
class Shipped:
    """A job's result from a worker without the run folder: its sample folders' files."""

    result: JobResult
    files: dict[str, dict[str, bytes]]
    """Folder relative to the samples root -> file name -> bytes."""


def on_visible_gpu(job: EvalJob) -> EvalJob:
    """The job on the GPU its worker sees: Ray gives a GPU worker one GPU through
    ``CUDA_VISIBLE_DEVICES``, where it is ``cuda:0`` whatever the driver's ``--device cuda:N``
    said. The samples' keys hold the device type only, so they do not change."""
    if not job.spec.device.startswith("cuda") or job.spec.device == "cuda:0":
        return job
    return replace(job, spec=replace(job.spec, device="cuda:0"))


def _localized(job: EvalJob, scratch: Path, blobs: dict[str, bytes]) -> EvalJob:
    """``job`` reading its checkpoints from, and writing its samples into, ``scratch``."""
    checkpoints = []
    for c in job.checkpoints:
        path = scratch / "checkpoints" / f"{c.name}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blobs[c.name])
        checkpoints.append(replace(c, path=str(path)))
    return replace(job, checkpoints=tuple(checkpoints), samples_root=str(scratch / "samples"))


def _publish(job: EvalJob, shipped: Shipped) -> JobResult:
    """Write a shipped job's sample folders where the single-machine path puts them."""
    root = Path(job.samples_root)
    paths = {c.name: c.path for c in job.checkpoints}
    written = []
    for rel, files in shipped.files.items():
        checkpoint = json.loads(files["meta.json"])["checkpoint"]["name"]
        written.append(publish_folder(root / rel, files, checkpoint_path=paths[checkpoint]))
    return replace(shipped.result, written=written)


def _pending_only(job: EvalJob) -> EvalJob:
    """The job without the checkpoints whose samples are already on the driver's disk."""
    pending = {c for cs in job.todo().values() for c in cs}
    return replace(job, checkpoints=tuple(c for c in job.checkpoints if c in pending))


class _Batched:
    """Adds up step counts and sends them on at most every ``PROGRESS_EVERY_S``."""

    def __init__(self, send: Callable[[int], object]):
        self.send, self.pending, self.last = send, 0, time.monotonic()

    def __call__(self, steps: int) -> None:
        self.pending += steps
        if time.monotonic() - self.last >= PROGRESS_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.send(self.pending)
        self.pending, self.last = 0, time.monotonic()


def run_jobs(
    jobs: Sequence[EvalJob],
    *,
    device: str,
    buffer_bytes: int,
    workers: int | None,
    retries: int,
    ship: bool = False,
    steps_todo: int,
    on_result: Callable[[JobResult], None],
    console: Console,
) -> ClusterRun:
    """Evaluate ``jobs`` on the connected Ray cluster; ``on_result`` gets each finished job's result.

    Args:
        device: the jobs' device: one worker per GPU for ``cuda``, per CPU otherwise.
        workers: how many workers (default: all GPUs or CPUs of the cluster, at most one per job).
        retries: times a job is started again after its worker died.
        ship: the workers do not see the run folder: checkpoints go to them, and sample
            folders come back, through Ray's object store.
        steps_todo: env steps of all jobs, for the progress bar.
    """
    ray = import_ray()
    worker_lost = (  # the worker process is gone, not the job's own error
        ray.exceptions.RayActorError,
        ray.exceptions.WorkerCrashedError,
        ray.exceptions.OutOfMemoryError,
        ray.exceptions.NodeDiedError,
    )
    progress_cls, worker_cls = _remote_classes()
    gpu = device.startswith("cuda")
    out = ClusterRun(workers=worker_slots(device, workers, len(jobs)))
    progress = progress_cls.options(num_cpus=0).remote()

    def new_worker():
        return worker_cls.options(num_cpus=1, num_gpus=1 if gpu else 0).remote(buffer_bytes, progress)

    blobs: dict[str, object] = {}  # checkpoint sha256 -> its bytes in the object store, put once

    def submit(worker, i: int):
        if not ship:
            return worker.run.remote(i, jobs[i])
        job = _pending_only(jobs[i])
        for c in job.checkpoints:
            if c.sha256 not in blobs:
                blobs[c.sha256] = ray.put(Path(c.path).read_bytes())
        return worker.run.remote(i, job, {c.name: blobs[c.sha256] for c in job.checkpoints})

    idle = deque(new_worker() for _ in range(out.workers))
    queue = deque(range(len(jobs)))
    attempts = [0] * len(jobs)
    running: dict = {}  # object ref -> (worker, job index)
    done = 0
    start = time.perf_counter()
    console.print(
        f"evaluating {len(jobs)} jobs on Ray with {out.workers} workers ({'GPU' if gpu else 'CPU'} each)"
    )
    bar = env_steps_bar(steps_todo)
    try:
        while queue or running:
            while queue and idle:
                i = queue.popleft()
                worker = idle.popleft()
                running[submit(worker, i)] = (worker, i)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=PROGRESS_EVERY_S)
            interrupt.check()
            for ref in ready:
                worker, i = running.pop(ref)
                try:
                    result = ray.get(ref)
                except worker_lost as err:
                    ray.kill(worker)
                    idle.append(new_worker())
                    progress.forget.remote(i)  # its steps are counted again by the retry
                    attempts[i] += 1
                    cause = _first_line(err)
                    if attempts[i] <= retries:
                        out.retries += 1
                        queue.appendleft(i)
                        console.print(
                            f"[yellow]worker died[/] during {describe(jobs[i])} ({cause}); "
                            f"retrying ({attempts[i]} of {retries})"
                        )
                    else:
                        out.failed.append((jobs[i], f"its worker died {attempts[i]} times ({cause})"))
                    continue
                except ray.exceptions.RayTaskError as err:
                    raise err.as_instanceof_cause() from None
                idle.append(worker)
                done += 1
                on_result(_publish(jobs[i], result) if isinstance(result, Shipped) else result)
            bar.set_postfix_str(f"jobs {done}/{len(jobs)}, {len(running)} running", refresh=False)
            bar.update(max(0, min(ray.get(progress.total.remote()), steps_todo) - bar.n))
    finally:
        bar.close()
        for worker in [*idle, *(w for w, _ in running.values())]:
            ray.kill(worker)  # Ctrl-C included: their partial folders never count
        ray.kill(progress)
    out.seconds = time.perf_counter() - start
    return out


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
