"""The one-step action delay of a ``+dyn`` scenario's delayed env slots.

A delayed env receives the action its policy chose on the step before: a 20 ms (one policy
step at 50 Hz) actuation lag, the kind of latency a real robot's communication adds. On its
first step, and on the step after a reset, it has no action of the step before and receives
zeros (the default joint positions), as a robot that just started would.
"""

from __future__ import annotations

import torch


class ActionDelay:
    """Holds each env's previous action and hands the delayed envs that one.

    Args:
        delayed: ``(N,)`` bool, the envs whose actions arrive one step late.
    """

    def __init__(self, delayed: torch.Tensor):
        self._delayed = delayed[:, None]
        self._previous: torch.Tensor | None = None

    def send(self, actions: torch.Tensor) -> torch.Tensor:
        """The actions to step the env with, ``(N, A)``: ``actions`` for the envs on time, the
        previous step's action (zeros where there is none) for the delayed ones."""
        previous = torch.zeros_like(actions) if self._previous is None else self._previous
        return torch.where(self._delayed, previous, actions)

    def stepped(self, actions: torch.Tensor, done: torch.Tensor) -> None:
        """After the env stepped: remember ``actions`` ``(N, A)`` (what the policy chose, not
        what was sent) for the next step, zeros for the envs that reset (``done``, ``(N,)``)."""
        self._previous = actions.masked_fill(done[:, None], 0.0)
