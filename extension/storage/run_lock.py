"""One post-convergence stage per run folder at a time.

Two stages on one run (``postconv run`` while the automatic stage still runs, or two
drivers at once) would write the same sample folders and rank each other's half-written
samples. :func:`run_lock` takes an exclusive ``flock`` on ``<run>/postconv/.lock`` for the
stage's whole life and fails at once, naming the process that holds it. The kernel drops
the lock when its process ends however it ends, so a stale lock file of a dead process
never blocks. ``run_stage`` holds it across ``evaluate`` and ``select_run``, which take it
again: nested use in one process counts, and the lock is released by the outermost.

``flock`` locks are per host on most network file systems: two machines evaluating one
shared run folder are not kept apart (a Ray driver and its workers are one stage and
need not be).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; the stage runs unlocked
    fcntl = None

LOCK_NAME = ".lock"

_held: dict[Path, int] = {}
"""Lock files this process holds -> nesting depth."""


class RunBusyError(RuntimeError):
    """Another process is running a stage on this run folder."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"pid {info.get('pid')} on {info.get('host')}, since {started}: {info.get('command')}"


@contextlib.contextmanager
def run_lock(stage_dir: str | Path) -> Iterator[None]:
    """Hold the exclusive lock of a run's ``postconv/`` folder (created if missing).

    Raises:
        RunBusyError: another live process holds it; the message says which and what to do.
    """
    stage_dir = Path(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    path = (stage_dir / LOCK_NAME).resolve()
    if path in _held or fcntl is None:
        _held[path] = _held.get(path, 0) + 1
        try:
            yield
        finally:
            _held[path] -= 1
            if not _held[path]:
                del _held[path]
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunBusyError(
            f"{stage_dir.parent}: a post-convergence stage is already running on this run folder "
            f"({_holder(path)}); wait for it to finish or stop it, then run this command again "
            "(it resumes from the samples on disk)"
        ) from None
    try:
        os.ftruncate(fd, 0)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "command": " ".join(sys.argv),
        }
        os.write(fd, json.dumps(info).encode())
        _held[path] = 1
        yield
    finally:
        _held.pop(path, None)
        os.close(fd)  # releases the flock


__all__ = ["RunBusyError", "run_lock"]
