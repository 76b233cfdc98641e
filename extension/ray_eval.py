"""The evaluation jobs of a run on a Ray cluster: one worker per GPU (or CPU slot), one simulation each.

A worker is a Ray actor holding one :class:`~postconv.rollout.Evaluator` (Isaac Lab keeps one
simulation per process, so the env is built once per worker and reused for all its jobs).
The driver hands each idle worker the next :class:`~postconv.rollout.EvalJob`; a job's
result is its sample folders, written by the worker where the single-machine path writes
them, so the selection that follows cannot tell the difference: same seeds, same common
random numbers, same numbers (every worker's env has the same size).

Faults: a worker that dies during a job (killed, out of memory, node lost) is replaced
and the job retried, up to ``retries`` times, then its checkpoints are reported as skipped
with the reason. Completed sample folders are never redone (the job's ``todo()`` skips
them) and a dead worker's partial folders never count (they are only renamed into place
when complete). Ctrl-C kills the workers and leaves the run resumable. An exception raised
by the evaluation itself is a bug or a bad input, not a fault: it stops the evaluation.

Workers need the run folder at the same path (a shared file system, or one machine), and
postconv with Isaac Lab installed, as on the driver.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rich.console import Console

from postconv.rollout import EvalJob, JobResult

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


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` (``auto``, ``HOST:PORT``, ``ray://...``) or, with ``local``
    or None, start one on this machine (Ray's ``RAY_ADDRESS`` still wins when set).

    Returns True if this call started Ray here (so the caller shuts it down).
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    local = address in (None, "", "local")
    ray.init(
        address=None if local else address,
        num_cpus=num_cpus if local else None,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,  # Isaac Lab's build logs from every worker would bury the progress bar
    )
    return True


def worker_slots(device: str, requested: int | None, jobs: int) -> int:
    """Workers to start: as asked, else one per GPU (``cuda`` devices) or per CPU of the cluster."""
    ray = import_ray()
    resources = ray.cluster_resources()
    kind = "GPU" if device.startswith("cuda") else "CPU"
    available = int(resources.get(kind, 0))
    if available < 1:
        raise ValueError(
            f"the Ray cluster has no {kind} for --device {device}; add {kind} nodes or pick another --device"
        )
    return max(1, min(requested or available, jobs))


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
            from postconv.rollout import Evaluator

            self.evaluator = Evaluator(buffer_bytes=buffer_bytes)
            self.progress = progress

        def run(self, index: int, job: EvalJob) -> JobResult:
            report = _Batched(lambda n: self.progress.add.remote(index, n))
            try:
                return self.evaluator.run(job, on_steps=report)
            finally:
                report.flush()

        def pid(self) -> int:
            return os.getpid()

    _remote_classes.cache = (Progress, EvalWorker)
    return _remote_classes.cache


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
    steps_todo: int,
    on_result: Callable[[JobResult], None],
    console: Console,
) -> ClusterRun:
    """Evaluate ``jobs`` on the connected Ray cluster; ``on_result`` gets each finished job's result.

    Args:
        device: the jobs' device: one worker per GPU for ``cuda``, per CPU otherwise.
        workers: how many workers (default: all GPUs or CPUs of the cluster, at most one per job).
        retries: times a job is started again after its worker died.
        steps_todo: env steps of all jobs, for the progress bar.
    """
    ray = import_ray()
    from tqdm import tqdm

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

    idle = deque(new_worker() for _ in range(out.workers))
    queue = deque(range(len(jobs)))
    attempts = [0] * len(jobs)
    running: dict = {}  # object ref -> (worker, job index)
    done = 0
    start = time.perf_counter()
    console.print(
        f"evaluating {len(jobs)} jobs on Ray with {out.workers} workers ({'GPU' if gpu else 'CPU'} each)"
    )
    bar = tqdm(total=steps_todo, unit="env-step", unit_scale=True, desc="evaluating", dynamic_ncols=True)
    try:
        while queue or running:
            while queue and idle:
                i = queue.popleft()
                worker = idle.popleft()
                running[worker.run.remote(i, jobs[i])] = (worker, i)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=PROGRESS_EVERY_S)
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
                on_result(result)
            bar.n = min(ray.get(progress.total.remote()), steps_todo)
            bar.set_postfix_str(f"jobs {done}/{len(jobs)}, {len(running)} running", refresh=True)
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
