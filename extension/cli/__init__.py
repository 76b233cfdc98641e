"""The ``postconv`` command: thin commands (:mod:`.commands`) over their options (:mod:`.options`)."""

from postconv.cli.commands import main

__all__ = ["main"]
