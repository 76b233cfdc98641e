"""What an evaluation did: ``<run>/postconv/evaluation.json``, written and read back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from postconv.storage.sample_store import STAGE_DIR, atomic_write_text


@dataclass
class EvaluationReport:
    """What :func:`evaluate` did; also written to ``<run>/postconv/evaluation.json``."""

    run: str
    task: str
    candidates: list[str]
    candidates_reason: str
    scenarios: list[str]
    sample_sets: list[list]
    """[scenario, checkpoint, seed, key] of every sample folder this evaluation stands for."""
    skipped: dict[str, str]
    sample_sets_written: int
    sample_sets_reused: int
    env_steps: int
    seconds: float
    total_env_steps: int = 0
    """Env steps of every evaluation of this run so far (resumed ones included)."""
    total_seconds: float = 0.0
    ray: dict | None = None
    """On Ray: workers, jobs retried after a worker died, jobs given up."""
    converged: bool | None = None
    """Whether the training curve settled (:func:`postconv.storage.checkpoints.convergence`); None
    when the candidates were not chosen by it (``--from-iter``, ``--all-checkpoints``, no curve)."""
    env: dict | None = None
    """The evaluation env as run: num_envs, envs_per_checkpoint, the groups of envs in it and
    the checkpoints a job fills (the others stand still), device, and where the sizes came
    from (on a GPU, the training's env count)."""
    finished: bool = True
    """False in the record written as the rollouts start: one left False was interrupted, and
    its sample sets are on disk only in part (records from before this field: finished)."""

    @property
    def env_steps_per_s(self) -> float:
        return self.env_steps / self.seconds if self.seconds else 0.0


def write_evaluation(run_path: Path, report: EvaluationReport) -> Path:
    data = {**asdict(report), "env_steps_per_s": report.env_steps_per_s}
    return atomic_write_text(run_path / STAGE_DIR / "evaluation.json", json.dumps(data, indent=2))


def read_evaluation(run_dir: str | Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / STAGE_DIR / "evaluation.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
