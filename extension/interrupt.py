"""Ctrl-C (and SIGTERM) that cannot be lost.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be; inside a
``__del__`` (Warp frees its arrays there) the exception is printed and ignored, and the
evaluation would carry on. The handler here also records the request, and the long loops
(every rollout step, the Ray driver's wait) call :func:`check`, which raises it again.
"""

from __future__ import annotations

import signal
import threading

_requested = threading.Event()


def _handle(signum, frame) -> None:
    _requested.set()
    raise KeyboardInterrupt


def install() -> None:
    """Handle SIGINT and SIGTERM alike. SIGINT explicitly too: a process started in the
    background inherits it ignored."""
    _requested.clear()
    signal.signal(signal.SIGINT, _handle)
    signal.signal(signal.SIGTERM, _handle)


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a stop was requested (even one swallowed elsewhere)."""
    if _requested.is_set():
        raise KeyboardInterrupt
