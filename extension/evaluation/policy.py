"""Deterministic actors from rsl_rl checkpoints, loaded safely.

Checkpoints may come from anyone (a teammate, W&B), so they are read with
``torch.load(weights_only=True)``: tensors only, no code runs. One that needs full
unpickling is refused unless the caller trusts it. Formats:

- rsl_rl 4.x / 5.x: ``actor_state_dict`` with ``mlp.<i>.weight|bias``, and
  ``obs_normalizer._mean|_std`` when observation normalization was on;
- rsl_rl 3.x: ``model_state_dict`` with ``actor.<i>.weight|bias`` and
  ``actor_obs_normalizer._mean|_std``;
- rsl_rl 2.x: the same actor keys, the normalizer in ``obs_norm_state_dict``.

The actor is rebuilt from the checkpoint's layer shapes and the activation named in the
run's ``params/agent.yaml``; the action is the policy's mean (no sampling).
"""

from __future__ import annotations

import itertools
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

_ACTIVATIONS = {
    "elu": nn.ELU,
    "selu": nn.SELU,
    "relu": nn.ReLU,
    "crelu": nn.CELU,
    "lrelu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
    "swish": nn.SiLU,
    "mish": nn.Mish,
    "identity": nn.Identity,
}
NORMALIZER_EPS = 1e-2  # rsl_rl's EmpiricalNormalization default


class CheckpointError(ValueError):
    """A checkpoint that cannot be evaluated; the message names it and the reason."""


@dataclass(frozen=True)
class ActorLayout:
    """Where a checkpoint format keeps the actor."""

    state_key: str
    layer_prefix: str
    normalizers: tuple[tuple[str, str], ...]  # (state dict key, key prefix inside it), first found wins


_LAYOUTS = (
    ActorLayout("actor_state_dict", "mlp.", (("actor_state_dict", "obs_normalizer."),)),  # rsl_rl >= 4
    ActorLayout(
        "model_state_dict",
        "actor.",
        (("model_state_dict", "actor_obs_normalizer."), ("obs_norm_state_dict", "")),  # rsl_rl 3.x, 2.x
    ),
)


class DeterministicActor(nn.Module):
    """obs (N, obs_dim) -> action mean (N, act_dim): normalize, then the MLP."""

    def __init__(
        self, layers: list[nn.Linear], activation: str, mean: torch.Tensor | None, std: torch.Tensor | None
    ):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise CheckpointError(
                f"unknown activation {activation!r} in agent.yaml; known: {', '.join(_ACTIVATIONS)}"
            )
        body: list[nn.Module] = []
        for i, layer in enumerate(layers):
            body.append(layer)
            if i < len(layers) - 1:
                body.append(_ACTIVATIONS[activation]())
        self.mlp = nn.Sequential(*body)
        self.register_buffer("obs_mean", mean if mean is not None else torch.zeros(layers[0].in_features))
        self.register_buffer(
            "obs_scale",
            1.0 / (std + NORMALIZER_EPS) if std is not None else torch.ones(layers[0].in_features),
        )

    @property
    def obs_dim(self) -> int:
        return self.mlp[0].in_features

    @property
    def act_dim(self) -> int:
        return self.mlp[-1].out_features

    @torch.no_grad()
    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mlp((obs - self.obs_mean) * self.obs_scale)


def read_checkpoint(path: Path, trust: bool = False) -> dict:
    """The checkpoint's contents, read without running code unless ``trust``."""
    if not trust and not zipfile.is_zipfile(path):
        # torch reads a non-archive as a legacy pickle and calls any damage "weights only" trouble
        raise CheckpointError(
            f"{path.name}: not a readable torch checkpoint (not the zip archive torch.save writes: "
            "truncated, damaged or another kind of file)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):
            raise CheckpointError(f"{path.name}: not a readable torch checkpoint ({err})") from err
        if not trust:
            raise CheckpointError(
                f"{path.name}: holds Python objects beyond tensors, so loading it would run code from the file; "
                "refused. Pass --trust-checkpoints (trust=True in Python) only if you trust its source"
            ) from err
    except Exception as err:  # a truncated or foreign file: zip, EOF and runtime errors alike
        raise CheckpointError(
            f"{path.name}: not a readable torch checkpoint ({type(err).__name__}: {err})"
        ) from err
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(
            f"{path.name}: not a readable torch checkpoint ({type(err).__name__}: {err})"
        ) from err


def load_actor(
    path: str | Path,
    agent_cfg: dict,
    obs_dim: int | None = None,
    act_dim: int | None = None,
    trust: bool = False,
) -> DeterministicActor:
    """The checkpoint's deterministic actor, checked against the task's sizes when given."""
    path = Path(path)
    data = read_checkpoint(path, trust)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path.name}: not an rsl_rl checkpoint (a {type(data).__name__}, not a dict)")
    layout = next((lay for lay in _LAYOUTS if lay.state_key in data), None)
    if layout is None:
        raise CheckpointError(
            f"{path.name}: no actor_state_dict (rsl_rl 4/5) or model_state_dict (rsl_rl 3); keys: {sorted(data)[:8]}"
        )
    layers = _linear_layers(data[layout.state_key], layout.layer_prefix, path)
    mean = std = None
    for key, prefix in layout.normalizers:
        norm = data.get(key) or {}
        if f"{prefix}_mean" in norm:
            mean, std = norm[f"{prefix}_mean"].reshape(-1).float(), norm[f"{prefix}_std"].reshape(-1).float()
            break
    actor_cfg = agent_cfg.get("actor") or agent_cfg.get("policy") or {}
    if mean is None and (
        actor_cfg.get("obs_normalization") or agent_cfg.get("empirical_normalization") is True
    ):
        raise CheckpointError(
            f"{path.name}: the run normalized observations (params/agent.yaml) but the checkpoint holds no "
            "normalizer statistics; its actions would be wrong"
        )
    if mean is not None and not (mean.numel() == std.numel() == layers[0].in_features):
        raise CheckpointError(
            f"{path.name}: its observation normalizer holds {mean.numel()} means and {std.numel()} deviations "
            f"for an actor of {layers[0].in_features} observations: a damaged or hand-edited checkpoint"
        )
    actor = DeterministicActor(layers, str(actor_cfg.get("activation", "elu")), mean, std)
    if obs_dim is not None and (actor.obs_dim, actor.act_dim) != (obs_dim, act_dim):
        raise CheckpointError(
            f"{path.name}: its actor maps {actor.obs_dim} observations to {actor.act_dim} actions, but the task has "
            f"{obs_dim} and {act_dim}: a checkpoint of another task or robot?"
        )
    _check_finite(actor.eval(), path)
    return actor


def _check_finite(actor: DeterministicActor, path: Path) -> None:
    """Refuse an actor whose weights or whose action at the zero observation are not finite: a
    diverged training's checkpoint would otherwise put NaN into every sample of its rollouts."""
    bad = [n for n, t in [*actor.named_parameters(), *actor.named_buffers()] if not torch.isfinite(t).all()]
    if bad:
        raise CheckpointError(
            f"{path.name}: NaN or inf in its weights ({', '.join(bad[:3])}): the training diverged by this "
            "iteration; it is left out (start the candidates earlier with --from-iter to rank those before)"
        )
    if not torch.isfinite(actor(torch.zeros(1, actor.obs_dim))).all():
        raise CheckpointError(
            f"{path.name}: its action at the zero observation is not finite (overflowing weights?); it is left out"
        )


def _linear_layers(state: dict, prefix: str, path: Path) -> list[nn.Linear]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.weight")
    indices = sorted(int(m.group(1)) for k in state if (m := pattern.fullmatch(k)))
    if not indices:
        raise CheckpointError(f"{path.name}: no '{prefix}<i>.weight' layers in the actor's state dict")
    layers = []
    for i in indices:
        weight, bias = state[f"{prefix}{i}.weight"], state.get(f"{prefix}{i}.bias")
        if weight.ndim != 2 or (bias is not None and tuple(bias.shape) != (weight.shape[0],)):
            shapes = f"weight {tuple(weight.shape)}" + ("" if bias is None else f", bias {tuple(bias.shape)}")
            raise CheckpointError(
                f"{path.name}: actor layer {prefix}{i} has {shapes}, not a (out, in) weight with an (out,) bias: "
                "a damaged or hand-edited checkpoint"
            )
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            layer.weight.copy_(weight)
            if bias is not None:
                layer.bias.copy_(bias)
        layers.append(layer)
    for a, b in itertools.pairwise(layers):
        if a.out_features != b.in_features:
            raise CheckpointError(
                f"{path.name}: actor layers do not chain ({a.out_features} -> {b.in_features})"
            )
    return layers
