"""The console postconv prints to."""

from __future__ import annotations

import sys

from rich.console import Console


def wide_console() -> Console:
    """A console that keeps the ranking table on one line per checkpoint in logs and pipes."""
    console = Console()
    return console if sys.stdout.isatty() else Console(width=max(132, console.width))
