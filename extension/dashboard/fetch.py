"""A run folder rebuilt from a W&B training run, for runs whose local folder is gone or elsewhere.

rsl_rl's W&B writer uploads every ``model_<iter>.pt`` and keeps the runner config in the
run's config (``train_cfg``); postconv's training hook with ``backend=wandb`` uploads
``params/*.yaml`` and ``run.json`` too. :func:`fetch_run` downloads those into
``logs/rsl_rl/<experiment>/<run name>/`` (Isaac Lab's layout, so the selection is grouped
under the same name as the training run, in its project) and writes the training curve from the run's
history as a TensorBoard file, so convergence detection works as on the original folder.
Files already there with the right size are not downloaded again: an interrupted fetch
resumes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from postconv.dashboard.log import SOURCE_RECORD
from postconv.storage.checkpoints import REWARD_TAG
from postconv.storage.sample_store import atomic_write_text

DEFAULT_ROOT = Path("logs/rsl_rl")
_RUN_FILES = re.compile(r"model_\d+\.pt|params/(agent|env)\.yaml|run\.json")
_RUN_PATH = re.compile(r"(?:https?://[^/]+/)?([^/\s]+)/([^/\s]+)/(?:runs/)?([^/\s?#]+)/?(?:[?#].*)?")


class FetchError(ValueError):
    """A W&B run that cannot be turned into a run folder, with what to do about it."""


class RemoteFile(Protocol):
    """The part of ``wandb.apis.public.File`` used here."""

    name: str
    size: int

    def download(self, root: str, replace: bool = False) -> Any: ...


class RemoteRun(Protocol):
    """The part of ``wandb.apis.public.Run`` used here."""

    name: str
    entity: str
    project: str
    id: str
    config: dict

    def files(self) -> Any: ...

    def scan_history(self, keys: list[str]) -> Any: ...


@dataclass(frozen=True)
class Fetched:
    """What :func:`fetch_run` left on disk."""

    run_dir: Path
    checkpoints: int
    downloaded: int
    """Files downloaded now; the others were there from an earlier fetch."""
    curve_points: int
    """Points of the training curve written (0: none in the run's history, or kept from before)."""


def parse_run_path(text: str) -> str:
    """``ENTITY/PROJECT/RUN_ID`` from that form or a run's URL (``https://wandb.ai/ENTITY/PROJECT/runs/RUN_ID``)."""
    match = _RUN_PATH.fullmatch(text.strip())
    if match is None:
        raise FetchError(
            f"{text!r} is not a W&B run; pass ENTITY/PROJECT/RUN_ID or the run's URL "
            "(https://wandb.ai/ENTITY/PROJECT/runs/RUN_ID)"
        )
    return "/".join(match.groups())


def open_remote_run(path: str) -> RemoteRun:
    """The run through W&B's public API; the errors say how to log in or what was not found."""
    import wandb

    try:
        return wandb.Api().run(path)
    except wandb.errors.CommError as err:
        raise FetchError(
            f"W&B run {path}: {str(err).rstrip('.')}; check the path and your login (`wandb login`)"
        ) from err
    except wandb.errors.UsageError as err:
        raise FetchError(f"W&B run {path}: {str(err).rstrip('.')} (or set WANDB_API_KEY)") from err


def fetch_run(
    run: RemoteRun, root: Path = DEFAULT_ROOT, task: str | None = None, progress: bool = True
) -> Fetched:
    """Download a training run's checkpoints and configs into ``root/<experiment>/<run name>/``.

    Args:
        run: the run, from :func:`open_remote_run`.
        root: the folder that holds experiments (Isaac Lab's ``logs/rsl_rl``).
        task: the task id, written to ``run.json`` when the run did not upload one.
        progress: show a progress bar.
    """
    import yaml
    from tqdm import tqdm

    train_cfg = run.config.get("train_cfg") or {}
    experiment = _safe_name(train_cfg.get("experiment_name") or run.project)
    run_dir = root / experiment / _safe_name(run.name)
    wanted = [f for f in run.files() if _RUN_FILES.fullmatch(f.name)]
    models = [f for f in wanted if f.name.startswith("model_")]
    if not models:
        raise FetchError(
            f"W&B run {run.project}/{run.name} holds no model_<iter>.pt files; train with rsl_rl's W&B writer "
            "(agent.logger.backend=wandb keeps postconv's stage) so checkpoints are uploaded"
        )
    downloaded = 0
    for f in tqdm(wanted, desc=f"fetching {run.name}", unit="file", disable=not progress):
        local = run_dir / f.name
        if local.is_file() and local.stat().st_size == f.size:
            continue
        f.download(root=str(run_dir), replace=True)
        downloaded += 1

    agent_yaml = run_dir / "params" / "agent.yaml"
    if not agent_yaml.is_file():
        if not train_cfg:
            raise FetchError(
                f"W&B run {run.project}/{run.name}: neither params/agent.yaml nor a train_cfg in its config; "
                "the actor's architecture is read from them"
            )
        agent_yaml.parent.mkdir(parents=True, exist_ok=True)
        agent_yaml.write_text(yaml.safe_dump(train_cfg, sort_keys=False))
    if task and not (run_dir / "run.json").is_file():
        (run_dir / "run.json").write_text(json.dumps({"task": task}) + "\n")
    source = {"entity": run.entity, "project": run.project, "path": f"{run.entity}/{run.project}/{run.id}"}
    atomic_write_text(run_dir / "postconv" / SOURCE_RECORD, json.dumps(source, indent=1) + "\n")
    return Fetched(run_dir, len(models), downloaded, _write_curve(run, run_dir))


def _write_curve(run: RemoteRun, run_dir: Path) -> int:
    """The training reward from the run's history as a TensorBoard file (what convergence detection reads)."""
    if any(run_dir.glob("events.out.tfevents.*")):
        return 0
    points = [
        (int(row["_step"]), float(row[REWARD_TAG]))
        for row in run.scan_history(keys=["_step", REWARD_TAG])
        if row.get(REWARD_TAG) is not None
    ]
    if not points:
        return 0
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(run_dir))
    for step, value in points:
        writer.add_scalar(REWARD_TAG, value, step)
    writer.close()
    return len(points)


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", str(name)).strip("._") or "run"
