"""``postconv sim2sim``: every ranked checkpoint of a run replayed in shifted C MuJoCo worlds.

run folder -> the selection's checkpoints -> one :class:`~postconv.sim2sim.batch.WorldBatch`
per world -> per-episode outcomes on disk -> ``outcomes.csv`` in the format
``postconv outcomes`` reads (one row per episode as a trial, one column per metric and
world) -> judged against the selection like real-robot outcomes.

Everything lands in ``<run>/postconv/sim2sim/``:

- ``episodes/<world>/<checkpoint>.npz``: one world's episodes of one checkpoint, with the
  key of what made them; a rerun reuses every file whose key matches (resume);
- ``episodes.csv``: every episode (world, checkpoint, episode, outcomes);
- ``summary.csv``: per world and checkpoint: survival rate, time to fall, falls per
  minute, tracking errors and return;
- ``outcomes.csv``: what ``postconv outcomes`` reads;
- ``agreement.json`` / ``.csv``: how the mean and each k predicted the outcomes.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import re
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mujoco
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from postconv import __version__
from postconv.evaluation.policy import CheckpointError, load_actor
from postconv.evaluation.rollout import CheckpointRef, GroupPolicy, checkpoint_ref, env_steps_bar
from postconv.ranking.result import Pick
from postconv.sim2sim.batch import EpisodeOutcomes, WorldBatch, thread_pool
from postconv.sim2sim.config import EpisodeSpec, Sim2SimConfig
from postconv.sim2sim.contract import ACT_DIM, OBS_DIM
from postconv.sim2sim.stress import Margins, print_margins, stress_test
from postconv.sim2sim.video import VIDEO_DIR, VideoResult, make_video, video_world
from postconv.sim2sim.worlds import Command, World, parse_worlds, world_model
from postconv.storage.checkpoints import open_run
from postconv.storage.sample_store import STAGE_DIR, atomic_write_text, config_hash
from postconv.storage.samples_file import atomic_write
from postconv.tasks import STAND_TASK, TASK_KINDS

SIM2SIM_DIR = "sim2sim"
STRESS_DIR = "stress"
"""Under the sim2sim folder: the margin search's tables (its episodes sit with the others')."""
VIDEO_SECONDS = 6.0
"""Length of the picks' video (s; at most the episodes')."""
POOLED = "all"
"""The pseudo-world of metrics averaged over every world, per episode slot."""


@dataclass
class Sim2SimResult:
    """What :func:`run_sim2sim` did and found."""

    run: str
    checkpoints: list[str]
    worlds: list[str]
    outcomes: dict[str, dict[str, dict[str, np.ndarray]]] = field(repr=False)
    """world -> checkpoint -> metric -> (episodes,) values."""
    skipped: dict[str, str]
    reused: int
    env_steps: int
    seconds: float
    unstable: dict[str, int]
    """world -> episodes whose physics diverged."""
    margins: Margins | None = None
    """Each checkpoint's robustness margin per kind of shift (with ``stress``)."""
    picks: list[Pick] = field(default_factory=list)
    """The selection's picks (:attr:`~postconv.ranking.result.SelectionResult.picks`), those replayed."""
    video: VideoResult | None = None
    """The picks filmed side by side (None: not asked for, or no OpenGL backend)."""
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def marks(self) -> dict[str, str]:
        """checkpoint -> what it is among the picks, e.g. ``chosen + last``."""
        return {p.name: " + ".join(p.roles) for p in self.picks}

    @property
    def env_steps_per_s(self) -> float:
        return self.env_steps / self.seconds if self.seconds else 0.0


def world_slug(world: World) -> str:
    """A folder name for a world: its text made file-safe, plus a hash to keep it unique."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", world.name).strip("_")[:60]
    return f"{safe}-{config_hash({'name': world.name})[:6]}"


def _key(world: World, spec: EpisodeSpec, ref: CheckpointRef, clip) -> str:
    return config_hash(
        {
            "world": asdict(world),
            "spec": asdict(spec),
            "checkpoint": ref.sha256,
            "clip_actions": clip,
            "postconv": __version__,
            "code": physics_code_hash(),
            "mujoco": mujoco.__version__,
        }
    )


@functools.cache
def physics_code_hash() -> str:
    """A hash of what makes an episode: the batch, the robot and its MJCF with its meshes, the
    contract, the worlds, the episode spec, the pushes, the G1's facts and the policy's batched
    actions. The version number stays put between releases, so an edit to any of these would
    otherwise reuse episodes the new code would not make."""
    from postconv.evaluation import rollout
    from postconv.sim2sim import batch, config, contract, robot, worlds
    from postconv.tasks import g1, scenarios

    modules = (batch, config, contract, robot, worlds, g1, scenarios, rollout)
    meshes = sorted((robot.G1_MJCF.parent / "assets").glob("*"))
    digest = hashlib.sha256()
    for path in (*(Path(m.__file__) for m in modules), robot.G1_MJCF, *meshes):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _load(path: Path, key: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path) as data:
            if str(data["key"]) != key:
                return None
            return {m: data[m] for m in (*EpisodeOutcomes.METRICS, "unstable")}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # damaged: computed again
        return None


def _save(path: Path, key: str, values: dict[str, np.ndarray]) -> None:
    def write(f):
        np.savez(f, key=np.array(key), **values)

    atomic_write(path, write)


def base_command(task: str | None) -> Command | None:
    """The command of a world that names none: a policy that learned to stand is asked to stand;
    None leaves the velocity tasks' mixed commands."""
    return Command("stand") if task == STAND_TASK else None


class Replayer:
    """Replays a run's checkpoints in worlds under the common random numbers of ``spec``; the
    episodes of a world x checkpoint are kept on disk and reused when their key matches."""

    def __init__(
        self, root: Path, spec: EpisodeSpec, clip, actors: dict, refs: dict[str, CheckpointRef], pool
    ):
        self.root = root
        self.spec = spec
        self.clip = clip
        """The runner config's action clip (None: none)."""
        self.actors = actors
        """checkpoint -> its loaded actor."""
        self.refs = refs
        self.pool = pool
        """The ``mujoco.rollout`` thread pool."""
        self.env_steps = 0
        """Env-steps simulated (not read from disk) so far."""

    def _path(self, world: World, name: str) -> Path:
        return self.root / "episodes" / world_slug(world) / f"{name}.npz"

    def cached(self, world: World, names: list[str]) -> dict[str, dict[str, np.ndarray]]:
        """checkpoint -> its episodes' outcomes in ``world``, for those already on disk."""
        found = {
            n: _load(self._path(world, n), _key(world, self.spec, self.refs[n], self.clip)) for n in names
        }
        return {n: v for n, v in found.items() if v is not None}

    def replay(self, world: World, names: list[str], bar=None) -> dict[str, dict[str, np.ndarray]]:
        """checkpoint -> metric -> (episodes,) in ``world``: read from disk, or run and saved."""
        done = self.cached(world, names)
        todo = [n for n in names if n not in done]
        if not todo:
            return done
        spec = self.spec
        batch = WorldBatch(world_model(world), world, spec, self.pool)
        policy = GroupPolicy([self.actors[n] for n in todo], spec.episodes, "cpu")
        steps = [0]

        def on_steps(n: int) -> None:
            steps[0] += n
            if bar is not None:
                bar.update(n)

        if bar is not None:
            bar.set_postfix_str(world.name)
        result = batch.run(policy, len(todo), clip=self.clip, on_steps=on_steps)
        self.env_steps += steps[0]
        if bar is not None:  # the fallen envs' rest of the episode, never stepped
            bar.update(len(todo) * spec.episodes * spec.steps - steps[0])
        for i, name in enumerate(todo):
            rows = slice(i * spec.episodes, (i + 1) * spec.episodes)
            values = {m: getattr(result, m)[rows] for m in (*EpisodeOutcomes.METRICS, "unstable")}
            _save(self._path(world, name), _key(world, spec, self.refs[name], self.clip), values)
            done[name] = values
        return done


def run_sim2sim(run_dir: str | Path, config: Sim2SimConfig, console: Console | None = None) -> Sim2SimResult:
    """Replay the selection's checkpoints of ``run_dir`` in every world; write and judge the outcomes."""
    from postconv.console import wide_console
    from postconv.ranking.result import SelectionResult

    console = console or wide_console()
    run = open_run(run_dir)
    out = run.path / STAGE_DIR
    if not (out / "selection.json").is_file():
        raise FileNotFoundError(
            f"{run.path}: no selection yet; run `postconv run {run.path}` first (sim2sim replays its ranked checkpoints)"
        )
    if run.task is not None and run.task not in TASK_KINDS:
        raise ValueError(
            f"{run.path}: trained on {run.task!r}; sim2sim replays the G1 tasks ({', '.join(TASK_KINDS)})"
        )
    selection = SelectionResult.from_json((out / "selection.json").read_text())
    ranked = {c.name for c in selection.checkpoints}
    checkpoints = [c for c in run.checkpoints if c.name in ranked]
    if len(checkpoints) < 2:
        raise ValueError(
            f"{run.path}: {len(checkpoints)} ranked checkpoint(s) on disk; sim2sim compares 2 or more"
        )
    worlds = parse_worlds(config.worlds, base_command(run.task))
    spec = config.spec
    clip = run.agent_cfg.get("clip_actions")
    refs = [checkpoint_ref(c.path, c.iteration) for c in checkpoints]
    root = out / SIM2SIM_DIR

    actors, skipped = {}, {}
    for ref in refs:
        try:
            actors[ref.name] = load_actor(ref.path, run.agent_cfg, OBS_DIM, ACT_DIM, trust=config.trust)
        except CheckpointError as err:
            skipped[ref.name] = str(err)
    refs = [r for r in refs if r.name in actors]
    if len(refs) < 2:
        reasons = "; ".join(f"{n}: {why}" for n, why in skipped.items())
        raise ValueError(
            f"{run.path}: {len(refs)} ranked checkpoint(s) could be loaded; sim2sim compares 2 or more ({reasons})"
        )
    console.print(
        f"sim2sim: [bold]{len(refs)}[/] checkpoints x {len(worlds)} worlds x {spec.episodes} episodes of "
        f"{spec.seconds:g} s (C MuJoCo, common random numbers)"
    )
    start = time.perf_counter()
    with thread_pool(config.threads) as pool:
        replayer = Replayer(root, spec, clip, actors, {r.name: r for r in refs}, pool)
        names = [r.name for r in refs]
        outcomes = {w.name: replayer.cached(w, names) for w in worlds}
        reused = sum(len(v) for v in outcomes.values())
        if reused:
            console.print(
                f"{reused} of {len(refs) * len(worlds)} world x checkpoint results already on disk: reused"
            )
        total = sum(len(refs) - len(outcomes[w.name]) for w in worlds) * spec.episodes * spec.steps
        if total:
            with env_steps_bar(total, "sim2sim") as bar:
                for world in worlds:
                    missing = [n for n in names if n not in outcomes[world.name]]
                    if missing:
                        outcomes[world.name] |= replayer.replay(world, missing, bar)
        margins = None
        if config.stress is not None:
            margins = stress_test(replayer, names, config.stress, base_command(run.task), console)
        env_steps = replayer.env_steps
        seconds = time.perf_counter() - start
        result = Sim2SimResult(
            run=str(run.path.resolve()),
            checkpoints=names,
            worlds=[w.name for w in worlds],
            outcomes=outcomes,
            skipped=skipped,
            reused=reused,
            env_steps=env_steps,
            seconds=seconds,
            unstable={w: int(sum(v["unstable"].sum() for v in outcomes[w].values())) for w in outcomes},
            margins=margins,
            # the chosen one, the worst case's and the mean's picks and the last, among those replayed here
            picks=[p for p in selection.picks if p.name in actors],
        )
        result.paths = write_tables(root, result, {r.name: r.iteration for r in refs})
        for name, why in skipped.items():
            console.print(f"[yellow]skipped {name}[/]: {why}")
        if env_steps:
            console.print(
                f"replayed {env_steps:,} env-steps in {seconds:.0f} s ({result.env_steps_per_s:,.0f} env-steps/s)"
            )
        print_summary(result, console)
        if margins is not None:
            print_margins(margins, console, result.marks)
        if config.video and result.picks:
            result.video = _film(result, run.task, actors, clip, spec, pool, root / VIDEO_DIR, console)
    return result


def _film(result: Sim2SimResult, task, actors, clip, spec: EpisodeSpec, pool, folder: Path, console):
    """The picks' video, or None; whatever goes wrong with it is said in one line, never raised."""
    try:
        return make_video(
            folder, video_world(result, result.picks), base_command(task), result.picks,
            [actors[p.name] for p in result.picks], clip, min(spec.seconds, VIDEO_SECONDS), spec.seed, pool, console,
        )  # fmt: skip
    except KeyboardInterrupt:
        raise
    except Exception as err:  # the outcomes are on disk already
        console.print(f"[yellow]no video[/]: {type(err).__name__}: {err}")
        return None


def _summary_rows(result: Sim2SimResult, iterations: dict[str, int]) -> list[dict]:
    rows = []
    for world in result.worlds:
        for name in result.checkpoints:
            v = result.outcomes[world][name]
            alive_min = float(v["time_to_fall"].sum()) / 60.0
            falls = int((~v["survived"].astype(bool) & ~v["unstable"].astype(bool)).sum())
            rows.append(
                {
                    "world": world,
                    "checkpoint": name,
                    "iteration": iterations.get(name),
                    "episodes": len(v["survived"]),
                    "survival_rate": float(np.mean(v["survived"])),
                    "mean_time_to_fall_s": float(np.mean(v["time_to_fall"])),
                    "falls_per_min": falls / alive_min if alive_min else math.nan,
                    "lin_tracking_error": float(np.mean(v["lin_tracking_error"])),
                    "ang_tracking_error": float(np.mean(v["ang_tracking_error"])),
                    "tracking_return": float(np.mean(v["tracking_return"])),
                    "unstable": int(np.sum(v["unstable"])),
                }
            )
    return rows


def outcome_columns(result: Sim2SimResult) -> list[str]:
    """The metric columns of ``outcomes.csv``: ``metric[world]`` for every world, then ``metric[all]``,
    then ``margin[kind]`` for every kind of shift searched (one value per checkpoint, on each of its rows)."""
    margins = [] if result.margins is None else [result.margins.column(k) for k in result.margins.kinds]
    return [f"{m}[{w}]" for w in [*result.worlds, POOLED] for m in EpisodeOutcomes.METRICS] + margins


def lower_is_better(columns: list[str]) -> tuple[str, ...]:
    return tuple(c for c in columns if c.split("[")[0] in EpisodeOutcomes.LOWER_IS_BETTER)


def _csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_tables(root: Path, result: Sim2SimResult, iterations: dict[str, int]) -> dict[str, Path]:
    """episodes.csv, summary.csv/json and outcomes.csv (for ``postconv outcomes``) under ``root``."""
    metrics = list(EpisodeOutcomes.METRICS)
    episodes = [
        [w, c, iterations.get(c), e, *(float(result.outcomes[w][c][m][e]) for m in metrics),
         int(result.outcomes[w][c]["unstable"][e])]
        for w in result.worlds
        for c in result.checkpoints
        for e in range(len(result.outcomes[w][c]["survived"]))
    ]  # fmt: skip
    summary = _summary_rows(result, iterations)
    columns = outcome_columns(result)
    trials = []
    for c in result.checkpoints:
        n = len(result.outcomes[result.worlds[0]][c]["survived"])
        for e in range(n):
            row = [c, e]
            for w in result.worlds:
                row += [float(result.outcomes[w][c][m][e]) for m in metrics]
            row += [float(np.mean([result.outcomes[w][c][m][e] for w in result.worlds])) for m in metrics]
            if result.margins is not None:
                row += [k.margin[c] for k in result.margins.kinds.values()]
            trials.append(row)
    if result.margins is None:  # an earlier search's tables no longer describe outcomes.csv
        for stale in ("margins.csv", "margins.json"):
            (root / STRESS_DIR / stale).unlink(missing_ok=True)
    stress = {} if result.margins is None else write_margins(root / STRESS_DIR, result.margins, iterations)
    return {
        "episodes": atomic_write_text(
            root / "episodes.csv",
            _csv(["world", "checkpoint", "iteration", "episode", *metrics, "unstable"], episodes),
        ),
        "summary": atomic_write_text(
            root / "summary.csv", _csv(list(summary[0]), [list(r.values()) for r in summary])
        ),
        "summary_json": atomic_write_text(
            root / "summary.json",
            json.dumps(
                {
                    "run": result.run,
                    "worlds": result.worlds,
                    "checkpoints": result.checkpoints,
                    "skipped": result.skipped,
                    "unstable": result.unstable,
                    "rows": summary,
                    "env_steps": result.env_steps,
                    "seconds": result.seconds,
                },
                indent=2,
            ),
        ),
        "outcomes": atomic_write_text(root / "outcomes.csv", _csv(["checkpoint", "trial", *columns], trials)),
        **stress,
    }


def write_margins(folder: Path, margins: Margins, iterations: dict[str, int]) -> dict[str, Path]:
    """``margins.csv`` (checkpoint x kind: margin, interval, censoring, and the magnitudes tried
    that bracket it) and ``margins.json`` (also every magnitude tried, with its survival share,
    and the search's cost)."""
    rows = [{"iteration": iterations.get(r["checkpoint"]), **r} for r in margins.rows()]
    header = ["checkpoint", "iteration", "kind", "unit", "margin", "lo", "hi", "censored", "survived", "fell"]
    return {
        "margins": atomic_write_text(
            folder / "margins.csv", _csv(header, [[r[h] for h in header] for r in rows])
        ),
        "margins_json": atomic_write_text(folder / "margins.json", margins.to_json()),
    }


def print_summary(result: Sim2SimResult, console: Console) -> None:
    """Per world: survival rate of each checkpoint, and whether the world separates them."""
    table = Table(title="Sim-to-sim survival rate per world (C MuJoCo)")
    table.add_column("world")
    for name in result.checkpoints:
        table.add_column(name.removeprefix("model_"), justify="right")
    table.add_column("note")
    for world in result.worlds:
        rates = [float(np.mean(result.outcomes[world][c]["survived"])) for c in result.checkpoints]
        note = "every checkpoint falls" if max(rates) == 0 else "none falls" if min(rates) == 1 else ""
        if result.unstable[world]:
            note = f"{result.unstable[world]} episodes unstable " + note
        table.add_row(escape(world), *(f"{r:.0%}" for r in rates), note)
    console.print(table)
