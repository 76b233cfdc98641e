"""postconv: post-convergence policy selection for Isaac Lab.

The package is laid out the way data flows: ``postconv.selection`` (pure math over
samples), ``postconv.tasks`` (Isaac Lab task configs), and this package (checkpoints,
rollouts, sample store, CLI, reports).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("postconv")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
