"""The selection's own errors (a leaf module: every solver raises them)."""


class SolverError(RuntimeError):
    """A worst-case program was not solved to the stated accuracy (the message says which)."""
