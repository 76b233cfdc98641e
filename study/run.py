"""The selection-quality study: train, select, replay in held-out worlds, compare predictors.

For each seed: train ``PostConv-Stand-G1`` on the CPU (``postconv train-mujoco``), take
the candidates after convergence, run the post-convergence stage on them (Isaac Lab,
kit-less, CPU), sample the same candidates in the nominal C MuJoCo twin (the control),
replay every candidate in held-out shifted worlds (``postconv sim2sim``), then score each
predictor (:mod:`postconv.study.analysis`) against the survival rate in each world.

Every step is resumable: a rerun reuses trainings, samples and replays already on disk.
Heavy outputs stay in ``work_dir`` (checkpoints, samples); the small results the README
quotes go to ``results_dir``: ``judged.csv`` (every seed x source x world x score),
``summary.csv`` (over seeds), ``tables.md`` (the README's tables), ``study.json`` (the
config, timings and every candidate's survival) and ``spearman_vs_k.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import mujoco
import numpy as np
from rich.console import Console
from rich.table import Table

from postconv.sim2sim.evaluate import POOLED  # the pseudo-world of outcomes averaged over the worlds
from postconv.storage.sample_store import file_sha256
from postconv.study.analysis import BASELINES, DEFAULT_K, VARIANTS, after_plateau, all_scores, curve_at, judge
from postconv.study.samples import SelectionSamples, from_stage, from_twin

TWIN_SAMPLES_VERSION = 2
"""Part of the twin samples' cache key: raise it when the twin's sampling changes."""
SOURCES = ("isaaclab", "mujoco")
"""Where the selection's samples come from: the stage in Isaac Lab, or the nominal C MuJoCo twin (control)."""


@dataclass(frozen=True)
class StudyConfig:
    """The study's settings, chosen before any held-out outcome was seen."""

    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds (one run each)."""
    iterations: int = 1000
    """PPO iterations per run (a checkpoint every 10)."""
    train_envs: int = 256
    candidates: int = 16
    """At least this many candidates per run: those from the reward plateau's start, one in
    every n; if fewer than twice this many converged, the last this many checkpoints."""
    scenarios: tuple[str, ...] = ("0.5@1-3", "1@2-4")
    """The stage's push scenarios: its default ones with pushes (0.5 m/s every 1 to 3 s, about
    what the policies met at the end of training, and 1 m/s every 2 to 4 s)."""
    envs_per_checkpoint: int = 16
    burn_in_steps: int = 50
    steps: int = 250
    """Recorded steps per env and scenario (5 s): 16 x 250 x 2 = 8,000 samples per candidate."""
    worlds: tuple[str, ...] = (
        "push=0.5@1-3",
        "push=1@1-3",
        "latency=20ms,push=0.5@1-3",
        "obs_delay=20ms,push=0.5@1-3",
        "strength=0.7,push=0.5@1-3",
        "friction=0.5,push=0.5@1-3",
        "mass=10,com_x=0.07,push=0.5@1-3",
        "noise=6,push=0.5@1-3",
        "joint_friction=2,joint_damping=2,push=0.5@1-3",
        "strength=0.8,latency=20ms,friction=0.4,mass=4,push=0.5@1-3",
    )
    """Worlds in C MuJoCo (the robot is asked to stand): the unshifted one under the base pushes
    (a reference: the control's samples come from it), then per kind of shift the magnitude
    whose fall rate, averaged over 4 candidates of seed 0, was closest to 50%
    (``postconv study --calibrate``, results/full/calibration.json); the selection never
    samples these."""
    episodes: int = 256
    """Episodes per candidate and world (identical for every candidate)."""
    seconds: float = 5.0
    """Episode length in the held-out worlds (pushes every 1 to 3 s: two or three per episode)."""
    ks: tuple[float, ...] = DEFAULT_K
    n_boot: int = 500
    work_dir: Path = Path("outputs/study")
    results_dir: Path = Path("study/results/full")

    def run_dir(self, seed: int) -> Path:
        return self.work_dir / f"stand_s{seed}"


QUICK = StudyConfig(
    seeds=(0,),
    candidates=8,
    scenarios=("0.5@1-3",),
    steps=150,
    worlds=StudyConfig.worlds[:4],
    episodes=64,
    n_boot=200,
    work_dir=Path("outputs/study-quick"),
    results_dir=Path("study/results/quick"),
)
"""One seed (trained as the full study's first, in its own folder), 8 candidates, one scenario,
4 worlds of 64 episodes: the pipeline and the sign of the result in ~40 min on 2 cores (training ~30)."""


@dataclass
class RunData:
    """One seed's inputs to the analysis."""

    seed: int
    samples: dict[str, SelectionSamples]
    """source -> the selection's samples."""
    train_reward: np.ndarray | None
    outcomes: dict[str, np.ndarray]
    """world -> (C, E) survived per episode (POOLED: the mean over worlds)."""
    timings: dict[str, float] = field(default_factory=dict)


def prepare_run(config: StudyConfig, seed: int, console: Console) -> RunData:
    """Everything one seed needs, computed or read back from ``work_dir``."""
    from postconv.cputrain.env import StandEnvConfig
    from postconv.cputrain.train import TrainConfig, is_trained, train
    from postconv.ranking.config import SelectionConfig
    from postconv.sim2sim.config import Sim2SimConfig
    from postconv.sim2sim.evaluate import run_sim2sim
    from postconv.sim2sim.judge import judge_and_publish
    from postconv.stage.config import StageConfig
    from postconv.stage.run import select_run
    from postconv.storage.checkpoints import open_run, training_curve

    timings: dict[str, float] = {}
    run_dir = config.run_dir(seed)
    t0 = time.perf_counter()
    if not is_trained(run_dir, config.iterations):
        console.rule(f"seed {seed}: training")
        train(
            TrainConfig(
                iterations=config.iterations,
                env=StandEnvConfig(num_envs=config.train_envs, seed=seed),
                run_dir=run_dir,
                resume=any(run_dir.glob("model_*.pt")),
            )
        )
    timings["train_s"] = time.perf_counter() - t0

    run = open_run(run_dir)
    after = after_plateau(run)
    if len(after) >= 2 * config.candidates:  # after the plateau's start, thinned evenly
        from_iter, every = after[0].iteration, len(after) // config.candidates
    else:  # few converged: the last checkpoints, so that there are enough to rank
        from_iter, every = run.checkpoints[-min(config.candidates, len(run.checkpoints))].iteration, None
    stage = StageConfig(
        from_iter=from_iter,
        scenarios=config.scenarios,
        num_envs=config.envs_per_checkpoint * 4,
        envs_per_checkpoint=config.envs_per_checkpoint,
        steps=config.steps,
        burn_in_steps=config.burn_in_steps,
        every=every,
        selection=SelectionConfig(n_boot=0),
        report=False,
        wandb=False,
    )
    console.rule(f"seed {seed}: post-convergence stage (Isaac Lab)")
    t0 = time.perf_counter()
    evaluate_in_subprocess(run_dir, stage)
    select_run(run_dir, stage, console)
    timings["stage_s"] = time.perf_counter() - t0
    isaac = from_stage(run_dir)

    twin_file = config.work_dir / f"twin_samples_s{seed}.npz"
    twin_key = {
        "checkpoints": {c: file_sha256(run_dir / f"{c}.pt") for c in isaac.names},
        "scenarios": config.scenarios, "steps": config.steps, "envs": config.envs_per_checkpoint,
        "burn_in": config.burn_in_steps, "twin": TWIN_SAMPLES_VERSION, "mujoco": mujoco.__version__,
    }  # fmt: skip
    t0 = time.perf_counter()
    twin = _cached_twin(twin_file, twin_key)
    if twin is None:
        console.rule(f"seed {seed}: the same candidates sampled in the C MuJoCo twin (control)")
        twin = from_twin(
            run_dir,
            isaac.names,
            config.scenarios,
            config.envs_per_checkpoint,
            config.burn_in_steps,
            config.steps,
        )
        twin.save(twin_file)
        twin_file.with_suffix(".json").write_text(json.dumps(twin_key))
    timings["twin_s"] = time.perf_counter() - t0

    console.rule(f"seed {seed}: held-out worlds (postconv sim2sim)")
    t0 = time.perf_counter()
    s2s = Sim2SimConfig(worlds=config.worlds, episodes=config.episodes, seconds=config.seconds, wandb=False)
    result = run_sim2sim(run_dir, s2s, console)
    judge_and_publish(run_dir, result, s2s, console)
    timings["sim2sim_s"] = time.perf_counter() - t0
    outcomes = {w: np.stack([result.outcomes[w][c]["survived"] for c in isaac.names]).astype(float)
                for w in result.worlds}  # fmt: skip
    outcomes[POOLED] = np.mean([outcomes[w] for w in result.worlds], axis=0)
    train_reward = curve_at(isaac.iterations, training_curve(run))
    return RunData(seed, {"isaaclab": isaac, "mujoco": twin}, train_reward, outcomes, timings)


def evaluate_in_subprocess(run_dir: Path, stage) -> None:
    """``postconv evaluate`` on ``run_dir`` in a process of its own: Isaac Lab keeps one
    simulation per process, and a study builds one per seed."""
    import subprocess
    import sys

    args = [
        "evaluate", str(run_dir), "--scenarios", *stage.scenarios, "--num_envs", str(stage.num_envs),
        "--envs-per-checkpoint", str(stage.envs_per_checkpoint), "--steps", str(stage.steps),
        "--burn-in", str(stage.burn_in_steps), "--seed", str(stage.seed),
    ]  # fmt: skip
    if stage.from_iter is not None:
        args += ["--from-iter", str(stage.from_iter)]
    if stage.every is not None:
        args += ["--every", str(stage.every)]
    done = subprocess.run([sys.executable, "-m", "postconv.cli", *args], check=False)
    if done.returncode != 0:
        raise RuntimeError(f"postconv {' '.join(args)} failed ({done.returncode}); its output is above")


def _cached_twin(path: Path, key: dict) -> SelectionSamples | None:
    meta = path.with_suffix(".json")
    if not (path.is_file() and meta.is_file()):
        return None
    if json.loads(meta.read_text()) != json.loads(json.dumps(key)):
        return None
    return SelectionSamples.load(path)


def judge_run(data: RunData, config: StudyConfig) -> list[dict]:
    """One row per source x world x score: Spearman (with its interval), Kendall, regret@1/@3."""
    rows = []
    for source, samples in data.samples.items():
        scores = all_scores(samples, data.train_reward, VARIANTS, config.ks)
        for world, episodes in data.outcomes.items():
            for name, score in scores.items():
                j = judge(score, episodes, n_boot=config.n_boot, seed=data.seed)
                rows.append({"seed": data.seed, "source": source, "world": world, "score": name, **asdict(j)})
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Mean, SD (ddof 1) and count of finite values over seeds, per source x world x score and metric."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["source"], r["world"], r["score"]), []).append(r)
    out = []
    for (source, world, score), rs in groups.items():
        row = {"source": source, "world": world, "score": score}
        for metric in ("spearman", "kendall", "regret1", "regret3"):
            mean, sd, n = _over_seeds([r[metric] for r in rs])
            row.update({f"{metric}_mean": mean, f"{metric}_sd": sd, f"{metric}_n": n})
        out.append(row)
    return out


def _over_seeds(values: list[float]) -> tuple[float, float, int]:
    """(mean, sample SD, count) of the finite values (a constant score has no Spearman)."""
    a = np.array(values, dtype=float)
    a = a[np.isfinite(a)]
    nan = float("nan")
    return (float(a.mean()) if a.size else nan, float(a.std(ddof=1)) if a.size > 1 else nan, int(a.size))


def write_results(config: StudyConfig, rows: list[dict], summary: list[dict], extra: dict) -> dict[str, Path]:
    out = config.results_dir
    out.mkdir(parents=True, exist_ok=True)
    paths = {"judged": out / "judged.csv", "summary": out / "summary.csv", "study": out / "study.json"}
    for key, table in (("judged", rows), ("summary", summary)):
        with paths[key].open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(
                {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()} for r in table
            )
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    paths["study"].write_text(json.dumps({"config": settings, **extra}, indent=2, default=str) + "\n")
    paths["plot"] = plot(summary, config, out / "spearman_vs_k.png")
    paths["markdown"] = out / "tables.md"
    paths["markdown"].write_text(markdown(summary, config))
    return paths


def plot(summary: list[dict], config: StudyConfig, path: Path) -> Path:
    """Spearman against k per world (Isaac Lab samples, default psi; k = 0 is the mean), baselines dashed."""
    from postconv.review.figures import pyplot, save_figure

    plt = pyplot()
    worlds = [*config.worlds, POOLED]
    cols = 4
    nrows = -(-len(worlds) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), sharey=True, squeeze=False)
    ks = (0.0, *config.ks)
    x = np.arange(len(ks))
    by = {(s["source"], s["world"], s["score"]): s for s in summary}
    for ax, world in zip(axes.flat, worlds, strict=False):
        for source, style in (("isaaclab", "-"), ("mujoco", ":")):
            for variant, color in (("reward", "C0"), ("upright", "C1")):
                ys = [
                    by.get((source, world, f"wc[{variant},k={k:g}]"), {}).get("spearman_mean", np.nan)
                    for k in ks
                ]
                ax.plot(
                    x, ys, style, color=color, marker="o", ms=3, label=f"worst case, {variant} ({source})"
                )
        for base, color in (("iteration", "C2"), ("sim_falls", "C3"), ("train_reward", "C4")):
            y = by.get(("isaaclab", world, base), {}).get("spearman_mean", np.nan)
            ax.axhline(y, color=color, ls="--", lw=1, label=base)
        ax.axhline(0, color="0.7", lw=0.5)
        ax.set_title(world, fontsize=8)
        ax.set_xticks(x, ["mean", *(f"{k:g}" for k in config.ks)], fontsize=7)
        ax.set_ylim(-1, 1)
    spare = list(axes.flat)[len(worlds) :]
    for ax in spare:
        ax.axis("off")
    axes[0, 0].set_ylabel("Spearman with survival")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    seeds = len(config.seeds)
    fig.suptitle(
        f"Rank correlation with held-out survival against k ({'mean over ' if seeds > 1 else ''}"
        f"{seeds} seed{'s' if seeds > 1 else ''}; k = 0: the plain mean)"
    )
    if spare:
        spare[0].legend(handles, labels, loc="center", fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 0.96))
    else:
        fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7)
        fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    return save_figure(fig, path)


HEADLINE = ("iteration", "train_reward", "sim_falls", "mean", "wc[reward,k=0.1]", "wc[reward,k=0.5]",
            "wc[reward,k=2]", "wc[shaping,k=0.5]", "wc[upright,k=0.5]")  # fmt: skip
"""The scores the README's per-world table shows (every score is in judged.csv and summary.csv)."""


def markdown(summary: list[dict], config: StudyConfig) -> str:
    """The README's tables: per world (Isaac Lab samples), per variant pooled, and regret@1."""
    by = {(s["source"], s["world"], s["score"]): s for s in summary}
    worlds = [*config.worlds, POOLED]

    def cell(source: str, world: str, score: str, key: str = "spearman") -> str:
        s = by.get((source, world, score))
        if s is None or not s[f"{key}_n"]:
            return "n/a"
        sign = "+" if key == "spearman" else ""
        text = f"{s[f'{key}_mean']:{sign}.2f}"
        if np.isfinite(s[f"{key}_sd"]):
            text += f" ± {s[f'{key}_sd']:.2f}"
        return text + (f" ({s[f'{key}_n']})" if s[f"{key}_n"] < len(config.seeds) else "")

    def table(header: list[str], rows: list[list[str]]) -> list[str]:
        return [
            "| " + " | ".join(header) + " |",
            "|" + " --- |" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows),
        ]

    out = [
        f"Spearman with survival per held-out world (selection samples from Isaac Lab; "
        f"{'mean ± SD over ' + str(len(config.seeds)) + ' seeds, (n) where fewer had a finite value' if len(config.seeds) > 1 else 'one seed'}; "
        "`all`: survival averaged over the worlds):",
        "",
    ]
    out += table(["world", *HEADLINE], [[w, *(cell("isaaclab", w, s) for s in HEADLINE)] for w in worlds])
    out += [
        "",
        "Pooled over the worlds, every variant (k = 0 is the variant's plain mean), Isaac Lab / C MuJoCo samples:",
        "",
    ]
    ks = (0.0, *config.ks)
    rows = [
        [
            v.name,
            *(
                f"{cell('isaaclab', POOLED, f'wc[{v.name},k={k:g}]')} / {cell('mujoco', POOLED, f'wc[{v.name},k={k:g}]')}"
                for k in ks
            ),
        ]
        for v in VARIANTS
    ]
    out += table(["variant", *(f"k={k:g}" for k in ks)], rows)
    out += ["", "The baselines pooled, Isaac Lab / C MuJoCo samples:", ""]
    out += table(
        ["score", "Spearman"],
        [[b, f"{cell('isaaclab', POOLED, b)} / {cell('mujoco', POOLED, b)}"] for b in BASELINES],
    )
    out += [
        "",
        "Regret@1: the share of episodes survived that the pick loses against the best candidate (Isaac Lab samples):",
        "",
    ]
    out += table(
        ["world", *HEADLINE], [[w, *(cell("isaaclab", w, s, "regret1") for s in HEADLINE)] for w in worlds]
    )
    return "\n".join(out) + "\n"


def print_summary(summary: list[dict], config: StudyConfig, console: Console) -> None:
    """Spearman (mean over seeds) per world for the baselines and the default worst case at each k."""
    worlds = [*config.worlds, POOLED]
    scores = [*BASELINES, *(f"wc[reward,k={k:g}]" for k in config.ks)]
    by = {(s["source"], s["world"], s["score"]): s for s in summary}
    for source in SOURCES:
        table = Table(title=f"Spearman with held-out survival, selection samples from {source}")
        table.add_column("world")
        for s in scores:
            table.add_column(s.replace("wc[reward,", "wc ").rstrip("]"), justify="right")
        for w in worlds:
            cells = [by.get((source, w, s), {}).get("spearman_mean", float("nan")) for s in scores]
            table.add_row(w, *(f"{c:+.2f}" for c in cells))
        console.print(table)


def read_judged(path: Path) -> list[dict]:
    """The rows of a judged.csv, numbers as floats (NaN where a score judged nothing)."""
    rows = []
    for row in csv.DictReader(path.open()):
        rows.append({k: (v if k in ("source", "world", "score") else float(v)) for k, v in row.items()})
    return rows


def stored_config(results_dir: Path) -> tuple[StudyConfig, dict]:
    """The config a results folder was made with (``study.json``), and the rest of that file."""
    study = json.loads((results_dir / "study.json").read_text())
    fields_ = {f.name: f for f in dataclasses.fields(StudyConfig)}
    values = {}
    for name, value in study["config"].items():
        if name not in fields_:
            continue
        values[name] = tuple(value) if isinstance(value, list) else value
    values["work_dir"], values["results_dir"] = Path(values["work_dir"]), results_dir
    return StudyConfig(**values), {k: v for k, v in study.items() if k != "config"}


def rewrite_results(results_dir: Path, console: Console) -> dict[str, Path]:
    """summary.csv, tables.md and the plot again from ``judged.csv``, with the settings in ``study.json``."""
    config, extra = stored_config(results_dir)
    rows = read_judged(results_dir / "judged.csv")
    summary = summarize(rows)
    print_summary(summary, config, console)
    return write_results(config, rows, summary, extra)


def run_study(config: StudyConfig, console: Console | None = None) -> dict[str, Path]:
    from postconv.console import wide_console

    console = console or wide_console()
    rows, timings, survival = [], {}, {}
    for seed in config.seeds:
        data = prepare_run(config, seed, console)
        rows += judge_run(data, config)
        timings[seed] = data.timings
        survival[seed] = {
            "candidates": list(data.samples["isaaclab"].names),
            **{w: np.round(o.mean(axis=1), 4).tolist() for w, o in data.outcomes.items()},
        }
    summary = summarize(rows)
    print_summary(summary, config, console)
    paths = write_results(config, rows, summary, {"timings_s": timings, "survival": survival})
    console.print("results: " + ", ".join(str(p) for p in paths.values()))
    return paths


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="postconv study", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one seed, 8 candidates, 4 worlds of 64 episodes (~40 min with its training)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: 0 1 2; quick: 0)")
    parser.add_argument("--work-dir", type=Path, help="where runs and samples go")
    parser.add_argument("--results-dir", type=Path, help="where the small results go")
    parser.add_argument(
        "--calibrate", type=Path, metavar="RUN_DIR",
        help="only grade the held-out worlds on this trained run (fall rates of a few candidates)",
    )  # fmt: skip
    parser.add_argument(
        "--rewrite",
        action="store_true",
        help="only rebuild the tables and the plot from RESULTS_DIR/judged.csv",
    )
    args = parser.parse_args(argv)
    if args.calibrate is not None:
        from postconv.console import wide_console
        from postconv.study.calibrate import calibrate

        full = StudyConfig()
        chosen = calibrate(
            args.calibrate, args.results_dir or full.results_dir, wide_console(), seconds=full.seconds
        )
        print("worlds:", " ".join(chosen.values()))
        return 0
    config = QUICK if args.quick else StudyConfig()
    changes = {k: v for k, v in (("seeds", tuple(args.seeds) if args.seeds else None),
                                 ("work_dir", args.work_dir), ("results_dir", args.results_dir)) if v is not None}  # fmt: skip
    config = replace(config, **changes)
    if args.rewrite:
        from postconv.console import wide_console

        rewrite_results(config.results_dir, wide_console())
    else:
        run_study(config)
    return 0


__all__ = ["QUICK", "StudyConfig", "judge_run", "main", "run_study", "summarize"]
