"""The chosen policy as files the robot side can run: TorchScript and ONNX.

Both take raw observations (N, obs_dim) and return the action means (N, act_dim): the
observation normalizer is inside (DeterministicActor normalizes, then runs the MLP).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch

from postconv.evaluation.policy import DeterministicActor


def export_policy(actor: DeterministicActor, out_dir: Path, stem: str = "policy") -> dict[str, Path]:
    """Write ``<stem>.pt`` (TorchScript) and ``<stem>.onnx``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    actor = actor.cpu().eval()
    example = torch.zeros(2, actor.obs_dim)
    paths = {"torchscript": out_dir / f"{stem}.pt", "onnx": out_dir / f"{stem}.onnx"}
    torch.jit.trace(actor, example).save(str(paths["torchscript"]))
    batch = torch.export.Dim("batch")
    # the exporter narrates every pass, warns about torchvision ops a policy never uses and
    # about its own deprecations: none of it concerns the user
    quiet_registry = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = quiet_registry.level
    quiet_registry.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.onnx.export(
                actor, (example,), str(paths["onnx"]), input_names=["obs"], output_names=["actions"],
                dynamic_shapes={"obs": {0: batch}}, external_data=False,
            )  # fmt: skip
    finally:
        quiet_registry.setLevel(level)
    return paths
