"""postconv: post-convergence policy selection for Isaac Lab.

The package is laid out the way data flows, in rooms that import only downwards (README,
Layout): ``tasks`` and ``selection`` (plain data, task configs, pure math), ``storage``
(samples and runs on disk), ``evaluation`` (rollouts), ``ranking`` (the selection on samples,
its result, the baselines), ``dashboard`` (W&B), ``review`` (console, figures, HTML report,
export, outcomes), ``sim2sim``, ``stage``, ``cputrain``, ``study``, and ``cli`` with the training ``hook``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("postconv")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
