"""Input checks shared by the selection functions.

Every check raises a ValueError whose message names the problem and the fix; the exact
messages are part of the tested interface (tests/selection/test_bad_inputs.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

SOLVERS = ("fast", "cvxpy")
SENSES = ("reward", "cost")


def choice(name: str, value: Any, allowed: tuple[str, ...], hint: str = "") -> str:
    """Return ``value`` if it is one of ``allowed``, else raise naming the options."""
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"unknown {name} {value!r}; choose one of {options}{hint}")
    return value


def as_tensor(x: Any, name: str) -> torch.Tensor:
    """Accept numpy arrays, torch tensors and nested sequences of numbers.

    Floating arrays and tensors keep their dtype, tensors their device (float32 samples are
    streamed in float32, with float64 sums); everything else becomes float64 on the CPU.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be an array of numbers; got {type(x).__name__}") from err
    if t.dtype == torch.bool or t.is_complex() or not (t.is_floating_point() or _is_integer(t)):
        raise ValueError(f"{name} must hold real numbers; got dtype {t.dtype}")
    if not t.is_floating_point() or t.dtype in (torch.float16, torch.bfloat16):
        t = t.to(torch.float64)
    return t


def on_host(x: Any) -> np.ndarray:
    """A numpy array of ``x``, a tensor on any device included (labels and weights of samples
    that live on a GPU)."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _is_integer(t: torch.Tensor) -> bool:
    return t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def samples(psi: Any) -> torch.Tensor:
    """Validate psi: shape (n,) or (B, n), n >= 1, all finite."""
    t = as_tensor(psi, "psi")
    if t.ndim not in (1, 2):
        raise ValueError(
            "psi must be a 1-D array of samples or a 2-D array (checkpoints, samples); "
            f"got shape {tuple(t.shape)}"
        )
    if t.shape[-1] == 0:
        raise ValueError("psi has no samples; pass at least one sample per checkpoint")
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        where = tuple(int(i) for i in torch.nonzero(bad)[0])
        at = where[0] if len(where) == 1 else where
        raise ValueError(
            f"psi contains NaN or inf (first at index {at}); drop or repair those samples before estimating"
        )
    return t


def weights(w: Any, psi: torch.Tensor) -> torch.Tensor | None:
    """Validate weights against psi and normalize them per row to sum to 1.

    Returns None for uniform weights (the fast path needs no weight array), else a tensor
    broadcastable to psi's (B, n) with rows summing to 1.
    """
    if w is None:
        return None
    t = as_tensor(w, "weights").to(device=psi.device, dtype=psi.dtype)
    if t.shape != psi.shape and not (t.ndim == 1 and psi.ndim == 2 and t.shape[0] == psi.shape[1]):
        raise ValueError(
            f"weights shape {tuple(t.shape)} does not match psi shape {tuple(psi.shape)}; "
            "pass one weight per sample (shape (n,) or the same shape as psi)"
        )
    if bool(torch.isnan(t).any()) or bool(torch.isinf(t).any()):
        raise ValueError("weights contain NaN or inf; pass finite, non-negative weights")
    if bool((t < 0).any()):
        raise ValueError("weights must be non-negative; got a negative weight")
    totals = t.sum(dim=-1, keepdim=True, dtype=torch.float64)
    if bool((totals <= 0).any()):
        rows = torch.nonzero(totals.reshape(-1) <= 0).reshape(-1).tolist()
        which = "weights sum" if t.ndim == 1 else f"weights of checkpoint(s) {rows} sum"
        raise ValueError(f"{which} to zero; give every checkpoint at least one sample with positive weight")
    return (t / totals.to(t.dtype)).to(psi.dtype)


def radii(k: Any) -> np.ndarray:
    """Validate the KL-ball radius k: a scalar or a 1-D sweep, finite and >= 0. Returns (K,)."""
    try:
        arr = np.asarray(k, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"k must be a number or a 1-D sequence of numbers; got {k!r}") from err
    if arr.ndim > 1:
        raise ValueError(f"k must be a scalar or a 1-D sweep; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("k is empty; pass a radius or a sweep such as [2, 4, 6]")
    arr = np.atleast_1d(arr)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"k must be finite and >= 0; got {arr.tolist()}")
    return arr
