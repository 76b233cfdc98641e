"""The divergences a worst case can be taken over: their names, as plain data."""

from __future__ import annotations

from typing import Literal

Divergence = Literal["kl", "chi2"]
DIVERGENCES: tuple[str, ...] = ("kl", "chi2")
"""``kl`` (exact KL, Hu and Hong 2012) and ``chi2`` (the paper's quadratic form)."""
