"""The ``postconv`` command.

postconv run RUN_DIR          evaluate the candidate checkpoints of a run, then rank them
postconv evaluate RUN_DIR     rollouts only: samples into RUN_DIR/postconv/samples
postconv select RUN_DIR       ranking only, from the stored samples
postconv select FILE.npz      ranking of a samples file; --demo: of a synthetic one
postconv train ARGS...        `isaaclab train ARGS...`, then `postconv run` on the new run
postconv fetch ENTITY/PROJECT/RUN_ID   a run folder from a W&B training run, for `postconv run`
postconv sim2sim RUN_DIR      the ranked checkpoints replayed in shifted C MuJoCo worlds, judging the ranking
postconv train-mujoco         the stand task trained on a CPU in its C MuJoCo twin (then --stage: postconv run)
postconv study [--quick]      the selection-quality study (trainings, stage, held-out worlds, predictors compared)
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

from rich.console import Console

from postconv import __version__, interrupt

DEMO_DIR = Path("outputs/demo")
# the main job on a 2-core CPU: 30 PPO iterations on 16 envs (a checkpoint every 3), then the
# candidates after convergence on 8 envs each, 150 steps, without and with pushes
DEMO_TRAIN = [
    "--task", "PostConv-Velocity-Flat-G1", "--num_envs", "16", "--max_iterations", "30", "--device", "cpu",
    "agent.device=cpu", "agent.save_interval=3",
    "--eval-num_envs", "32", "--eval-envs-per-checkpoint", "8", "--eval-steps", "150", "--eval-burn-in", "50",
    "--scenarios", "none", "0.5@1-3",
]  # fmt: skip


def _selection_options(parser: argparse.ArgumentParser, stage: bool = False) -> None:
    g = parser.add_argument_group("selection")
    if stage:
        g.add_argument(
            "--sim2sim", action="store_true",
            help="then replay the ranked checkpoints in shifted C MuJoCo worlds (postconv sim2sim, its defaults)",
        )  # fmt: skip
        g.add_argument(
            "--stress", action="store_true",
            help="then sim2sim with each checkpoint's robustness margins too (postconv sim2sim --stress; implies --sim2sim)",
        )  # fmt: skip
    g.add_argument("--k", type=float, nargs="+", default=[1.0, 2.0, 4.0, 6.0], help="radii to report")
    g.add_argument("--primary-k", type=float, default=2.0, help="the radius that picks the checkpoint")
    g.add_argument("--divergence", choices=["kl", "chi2"], default="kl")
    g.add_argument("--n-boot", type=int, default=200, help="bootstrap replicates (0: no intervals)")
    g.add_argument("--level", type=float, default=0.9, help="interval coverage")
    g.add_argument(
        "--psi", nargs="+", metavar="TERM=WEIGHT",
        help="(run folders) performance as a weighted sum of reward terms (default: the task reward)",
    )  # fmt: skip
    g.add_argument(
        "--sense", choices=["reward", "cost"], default="reward", help="(run folders) reward or cost"
    )
    g.add_argument(
        "--unit", choices=["episode", "step"], default="episode",
        help="(run folders) one sample per env slot's recording (episode) or per step",
    )  # fmt: skip
    g.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="(run folders) no charts, HTML, export or W&B",
    )
    g.add_argument("--no-wandb", dest="wandb", action="store_false", help="(run folders) do not log to W&B")
    g.add_argument(
        "--wandb-project", help="(run folders) W&B project (default: the training's, else postconv)"
    )


def _stage_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """The stage's options; ``postconv train`` prefixes the ones Isaac Lab's training also has."""
    from postconv.rollout import DEFAULT_SCENARIOS, FEATURES
    from postconv.tasks.scenarios import MILD_DYNAMICS

    g = parser.add_argument_group("evaluation")
    if not prefix:
        g.add_argument("--task", help="task id (default: from the run's run.json)")
        g.add_argument("--device", default="cpu", help="simulation and policy device: cpu or cuda:0")
        g.add_argument(
            "--seed", type=int, default=0, help="seed of the common random numbers and the bootstrap"
        )
        g.add_argument(
            "--headless", action="store_true", help="accepted for Isaac Lab habit; always headless"
        )
    g.add_argument(
        f"--{prefix}num_envs",
        dest="num_envs",
        type=int,
        help="envs of the evaluation env (default: 64 on the CPU; on a GPU the training's env count, at least 1024)",
    )
    g.add_argument(
        f"--{prefix}envs-per-checkpoint", dest="envs_per_checkpoint", type=int,
        help="envs each checkpoint drives; num_envs / this many checkpoints are evaluated at once "
        "(default: 16 on the CPU, 256 on a GPU)",
    )  # fmt: skip
    g.add_argument(
        f"--{prefix}checkpoints-per-job", dest="checkpoints_per_job", type=int,
        help="checkpoints per unit of work (default: num_envs / envs-per-checkpoint)",
    )  # fmt: skip
    g.add_argument(
        f"--{prefix}steps", dest="steps", type=int, default=250, help="recorded steps per env (50 Hz)"
    )
    g.add_argument(
        f"--{prefix}burn-in", dest="burn_in_steps", type=int, default=50, help="unrecorded steps first"
    )
    g.add_argument(
        f"--{prefix}num-seeds", dest="num_seeds", type=int, default=1, help="rollouts per checkpoint"
    )
    g.add_argument(
        "--scenarios", nargs="+", default=list(DEFAULT_SCENARIOS),
        help="push scenarios: none, or VELOCITY@LOW-HIGH (m/s kicks every LOW-HIGH s); append +dyn for per-env "
        f"dynamics draws ({MILD_DYNAMICS.describe()})",
    )  # fmt: skip
    g.add_argument("--features", nargs="+", default=list(FEATURES), choices=list(FEATURES))
    g.add_argument(
        "--from-iter", type=int, help="candidates from this iteration (instead of the convergence rule)"
    )
    g.add_argument("--every", type=int, help="keep every n-th candidate, counting back from the last")
    g.add_argument("--all-checkpoints", action="store_true", help="ignore the convergence rule")
    r = parser.add_argument_group("Ray (pip install 'postconv[ray]')")
    r.add_argument(
        "--ray", nargs="?", const="local", metavar="ADDRESS",
        help="evaluate on Ray: alone, a cluster started on this machine; auto, HOST:PORT or ray://... joins one",
    )  # fmt: skip
    r.add_argument(
        "--ray-workers", type=int, help="workers (default: one per GPU, or per CPU, of the cluster)"
    )
    r.add_argument("--ray-retries", type=int, default=2, help="times a job is retried after its worker died")
    r.add_argument(
        "--ray-ship", action="store_true",
        help="the workers do not see the run folder: checkpoints and samples travel through Ray's object store",
    )  # fmt: skip
    g.add_argument(
        "--trust-checkpoints", action="store_true",
        help="load checkpoints that need full unpickling (runs code from the file; only for sources you trust)",
    )  # fmt: skip


def _sim2sim_options(parser: argparse.ArgumentParser) -> None:
    from postconv.sim2sim.evaluate import Sim2SimConfig

    d = Sim2SimConfig()
    g = parser.add_argument_group("sim-to-sim (C MuJoCo)")
    g.add_argument("--worlds", nargs="+", default=list(d.worlds), metavar="WORLD",
                   help="worlds to replay in (default: a grid from mild to severe)")  # fmt: skip
    g.add_argument("--episodes", type=int, default=d.episodes,
                   help="episodes per checkpoint and world")  # fmt: skip
    g.add_argument("--seconds", type=float, default=d.seconds, help="episode length (s)")
    g.add_argument("--threads", type=int, help="physics threads (default: every core)")
    g.add_argument("--seed", type=int, default=0, help="seed of the common random numbers")
    g.add_argument(
        "--trust-checkpoints", action="store_true", help="load checkpoints that need full unpickling"
    )
    g.add_argument(
        "--no-wandb", dest="wandb", action="store_false", help="do not log to the selection's W&B run"
    )
    _stress_options(parser)


def _stress_options(parser: argparse.ArgumentParser) -> None:
    from postconv.sim2sim.stress import KINDS, StressConfig

    d = StressConfig()
    g = parser.add_argument_group("sim-to-sim margins and video")
    g.add_argument(
        "--stress", action="store_true",
        help="also search each checkpoint's robustness margin per kind of shift: the largest magnitude at which "
        "it still survives --stress-share of its episodes (outcomes.csv columns margin[KIND])",
    )  # fmt: skip
    g.add_argument("--stress-kinds", nargs="+", default=list(d.kinds), metavar="KIND",
                   help=f"kinds of shift to search (default: all of {', '.join(KINDS)})")  # fmt: skip
    g.add_argument("--stress-share", type=float, default=d.share, help="share of episodes that must survive")
    g.add_argument("--stress-rounds", type=int, default=d.rounds, help="bisection rounds after the bracket")
    g.add_argument("--stress-push", default=d.base_push, metavar="V@LOW-HIGH",
                   help="pushes in every world of the search (none, or e.g. 0.5@1-3)")  # fmt: skip
    g.add_argument("--no-video", dest="video", action="store_false",
                   help="do not film the chosen checkpoint, the mean's pick and the last one")  # fmt: skip


def sim2sim_config(args: argparse.Namespace):
    from postconv.sim2sim.evaluate import Sim2SimConfig
    from postconv.sim2sim.stress import StressConfig

    stress = None
    if getattr(args, "stress", False):
        stress = StressConfig(
            kinds=tuple(args.stress_kinds), share=args.stress_share, rounds=args.stress_rounds,
            base_push=args.stress_push,
        )  # fmt: skip
    return Sim2SimConfig(
        worlds=tuple(args.worlds),
        episodes=args.episodes,
        seconds=args.seconds,
        seed=args.seed,
        threads=args.threads,
        trust=getattr(args, "trust_checkpoints", False),
        wandb=getattr(args, "wandb", True),
        stress=stress,
        video=getattr(args, "video", True),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="postconv", description="Post-convergence policy selection for Isaac Lab."
    )
    parser.add_argument("--version", action="version", version=f"postconv {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    for name, text in (
        ("run", "evaluate a run's candidate checkpoints under pushes, then rank them"),
        ("evaluate", "evaluate a run's candidate checkpoints (samples only)"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("run_dir", type=Path, help="the run folder: logs/rsl_rl/<experiment>/<timestamp>")
        _stage_options(p)
        if name == "run":
            _selection_options(p, stage=True)

    sel = sub.add_parser(
        "select",
        help="rank checkpoints by worst-case performance, from a run's samples or a samples file",
        description="Rank checkpoints by their worst-case performance within a divergence ball of radius k "
        "around the simulation distribution, next to the plain mean.",
    )
    sel.add_argument(
        "samples", nargs="?", type=Path, help="a run folder evaluated before, or an npz samples file"
    )
    sel.add_argument(
        "--demo", action="store_true", help=f"write a synthetic samples file to {DEMO_DIR} and rank it"
    )
    sel.add_argument("--seed", type=int, default=0)
    sel.add_argument("--out", type=Path, help="results folder for a samples file (default: beside it)")
    _selection_options(sel)

    train = sub.add_parser(
        "train",
        allow_abbrev=False,  # a prefix of one of our options must not swallow an isaaclab train argument
        help="train with `isaaclab train` (all its arguments), then run the stage on the new run",
        description="Everything not listed here goes to `isaaclab train` unchanged (--task, --num_envs, "
        "--device, --seed, --max_iterations, agent.* overrides, ...). The evaluation's own sizes take an eval- prefix.",
    )
    _stage_options(train, prefix="eval-")
    _selection_options(train, stage=True)

    out = sub.add_parser(
        "outcomes",
        help="compare the selection with real-robot outcomes (CSV: checkpoint[,trial],metric,...)",
        description="How well did the plain mean and the worst case at each k rank the checkpoints that the robot "
        "tried? Spearman, Kendall, regret@1 and @3 per metric, and the k that best predicts (leave-one-out).",
    )
    out.add_argument("run_dir", type=Path, help="the run folder whose selection the outcomes judge")
    out.add_argument(
        "outcomes", type=Path, help="CSV with a checkpoint column, optionally trial, and metric columns"
    )
    out.add_argument(
        "--lower-is-better", nargs="+", default=[], metavar="METRIC", help="metrics where less is better"
    )
    out.add_argument(
        "--no-wandb", dest="wandb", action="store_false", help="do not log to the selection's W&B run"
    )

    fetch = sub.add_parser(
        "fetch",
        help="rebuild a run folder from a W&B training run (checkpoints, configs, training curve)",
        description="Downloads the model_<iter>.pt files, params/*.yaml and run.json that a training run logged "
        "to W&B into logs/rsl_rl/<experiment>/<run name>/, with its training curve; then `postconv run` that folder. "
        "Needs `wandb login` or WANDB_API_KEY. Files already there are not downloaded again.",
    )
    fetch.add_argument("wandb_run", help="ENTITY/PROJECT/RUN_ID or the run's URL")
    fetch.add_argument(
        "--into", type=Path, default=Path("logs/rsl_rl"), help="the folder holding experiments"
    )
    fetch.add_argument("--task", help="task id, when the run did not upload its run.json")

    tm = sub.add_parser(
        "train-mujoco",
        help="train PostConv-Stand-G1 on the CPU in its C MuJoCo twin (an Isaac Lab run folder)",
        description="rsl_rl PPO with the task's runner config on the C MuJoCo twin of PostConv-Stand-G1 (same "
        "observation, action, rewards, terminations and pushes; a push curriculum). Writes "
        "logs/rsl_rl/g1_stand/<timestamp>/ as Isaac Lab would (model_<iter>.pt, params/, run.json, TensorBoard), "
        "so `postconv run` evaluates it in Isaac Lab. About 3,600 env-steps/s with learning on 2 cores: "
        "1000 iterations of 256 envs take ~30 min.",
    )
    tm.add_argument("--iterations", type=int, default=1000, help="PPO iterations (24 steps of every env)")
    tm.add_argument("--num_envs", type=int, default=256, help="worlds stepped together")
    tm.add_argument("--seed", type=int, default=0)
    tm.add_argument("--threads", type=int, help="mujoco.rollout threads (default: every core)")
    tm.add_argument("--log-root", type=Path, default=Path("logs/rsl_rl"), help="experiments folder")
    tm.add_argument("--run-dir", type=Path, help="exact run folder (with --resume: the run to continue)")
    tm.add_argument("--resume", action="store_true", help="continue --run-dir from its last checkpoint")
    tm.add_argument(
        "--no-curriculum",
        dest="curriculum",
        action="store_false",
        help="full pushes from the first iteration",
    )
    tm.add_argument("--stage", action="store_true", help="then run the post-convergence stage (postconv run)")

    s2s = sub.add_parser(
        "sim2sim",
        help="replay the ranked checkpoints in shifted C MuJoCo worlds; the outcomes judge the ranking",
        description="Every checkpoint the selection ranked runs the same episodes (initial states, commands, pushes, "
        "noise) in each world: the nominal G1 in plain C MuJoCo and shifted copies of it. Survival, time to fall, "
        "tracking errors and return per episode go to RUN_DIR/postconv/sim2sim/outcomes.csv, which then judges the "
        "ranking as `postconv outcomes` does. A world: nominal, or comma-joined KEY=VALUE shifts with KEY one of "
        "strength, latency, obs_delay, joint_friction, joint_damping, friction, mass, com_x, com_y, noise, gyro_bias, "
        "tilt, encoder_bias, push, command (e.g. strength=0.8,latency=20ms push=1@2-4 command=turn:1).",
    )
    s2s.add_argument("run_dir", type=Path, help="a run folder with a selection (postconv run)")
    _sim2sim_options(s2s)

    sub.add_parser(
        "study",
        add_help=False,
        help="the selection-quality study: stand policies trained on the CPU, ranked, judged in held-out worlds",
    )
    sub.add_parser(
        "demo",
        help="the main job at CPU size: train the flat G1 task briefly, then the stage with pushes (~10 min)",
        description=f"Runs: postconv train {' '.join(DEMO_TRAIN)}",
    )
    return parser


def _psi_terms(items: list[str] | None) -> dict[str, float] | None:
    if not items:
        return None
    terms = {}
    for item in items:
        name, _, weight = item.partition("=")
        try:
            terms[name] = float(weight) if weight else 1.0
        except ValueError as err:
            raise ValueError(f"--psi {item!r}: write TERM=WEIGHT, e.g. track_linear_velocity=1") from err
    return terms


def stage_config(args: argparse.Namespace):
    """The :class:`~postconv.stage.StageConfig` of parsed CLI arguments."""
    from postconv.report import SelectionConfig
    from postconv.stage import StageConfig

    # `evaluate` has no selection options: the defaults stand
    chosen = {
        name: getattr(args, name)
        for name in ("primary_k", "divergence", "n_boot", "level")
        if hasattr(args, name)
    }
    if hasattr(args, "k"):
        chosen["k"] = tuple(args.k)
    selection = SelectionConfig(**chosen, seed=args.seed)
    given = {
        f.name: getattr(args, f.name) for f in fields(StageConfig) if getattr(args, f.name, None) is not None
    }
    given.update(
        scenarios=tuple(given.get("scenarios", ())) or StageConfig.scenarios,
        features=tuple(given.get("features", ())) or StageConfig().features,
        after_convergence=not getattr(args, "all_checkpoints", False),
        trust=getattr(args, "trust_checkpoints", False),
        psi_terms=_psi_terms(getattr(args, "psi", None)),
        sense=getattr(args, "sense", None) or "reward",
        unit=getattr(args, "unit", None) or "episode",
        selection=selection,
    )
    return StageConfig(**given)


def parse_stage_args(extra: list[str]):
    """The :class:`~postconv.stage.StageConfig` that ``postconv run RUN_DIR *extra`` would use,
    or a ValueError naming the bad option (how the training hook checks its stage args early)."""
    import contextlib
    import io

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = _parser().parse_args(["run", "RUN_DIR", *extra])
    except SystemExit as exit_:
        lines = [x for x in err.getvalue().splitlines() if x.strip()]
        raise ValueError(f"stage options {extra}: {lines[-1] if lines else exit_}") from None
    return stage_config(args)


def _select(args: argparse.Namespace, console: Console) -> int:
    from postconv.demo import demo_samples
    from postconv.report import SelectionConfig, print_summary, write_results
    from postconv.samples_file import save_samples

    if args.demo == (args.samples is not None):
        console.print("[red]give a run folder, a samples file or --demo[/]")
        return 2
    if args.samples is not None and args.samples.is_dir():
        from postconv.stage import select_run

        select_run(args.samples, stage_config(args), console)
        return 0
    if args.demo:
        path = save_samples(DEMO_DIR / "samples.npz", demo_samples(args.seed))
        console.print(f"wrote synthetic demo samples to {path}")
    elif not args.samples.exists() and args.samples.suffix != ".npz":
        raise FileNotFoundError(
            f"{args.samples}: no such run folder or samples file; give a run folder evaluated before "
            f"(`postconv evaluate {args.samples}`) or an .npz samples file (`postconv select --demo` writes one)"
        )
    else:
        path = args.samples
    config = SelectionConfig(
        k=tuple(args.k),
        primary_k=args.primary_k,
        divergence=args.divergence,
        n_boot=args.n_boot,
        level=args.level,
        seed=args.seed,
    )
    result = _select_file(path, config, console)
    paths = write_results(result, args.out or path.parent)
    print_summary(result, paths, console)
    return 0


def _select_file(path: Path, config, console: Console):
    """The selection on a samples file: loaded whole, or streamed in chunks when it is large
    (psi over :data:`~postconv.report.STREAM_SAMPLES` samples) and stored uncompressed."""
    from rich.markup import escape

    from postconv import report
    from postconv.file_source import NotStreamable, NpzSource, psi_shape
    from postconv.samples_file import load_samples
    from postconv.selection.ranking import MIN_GROUP_SIZE

    shape = psi_shape(path)
    if shape is not None and math.prod(shape) > report.STREAM_SAMPLES:
        try:
            source = NpzSource(path)
            if config.n_boot and source.n_groups * MIN_GROUP_SIZE > shape[1]:
                # the grouped bootstrap holds sums per group: as many as the samples here
                raise NotStreamable(
                    f"{path}: {source.n_groups:,} bootstrap groups for {shape[1]:,} samples per checkpoint "
                    f"are too fine to resample by group ({MIN_GROUP_SIZE} samples a group at least); store the episode "
                    "or env of each sample as groups to stream it, or pass --n-boot 0 (no intervals)"
                )
        except NotStreamable as why:
            console.print(f"[yellow]note:[/] {escape(str(why))}; read whole into memory instead")
        else:
            with report.pass_progress(
                console, f"selecting among {len(source.names)} checkpoints"
            ) as progress:
                source.progress = progress
                result = report.select_source(source, source.names, source.sense, config)
            console.print(f"selected from {escape(report.streamed_summary(result, path.name))}")
            return result
    samples = load_samples(path)
    with console.status(f"selecting among {len(samples.names)} checkpoints"):
        return report.select(samples, config)


def with_learner_device(passthrough: list[str], device: str | None, console: Console) -> list[str]:
    """``isaaclab train`` arguments with ``--device`` carried to the learner as well.

    Isaac Lab 3.0's ``--device`` moves the simulation only; rsl_rl's runner stays on its
    configured ``cuda:0`` and fails on a machine without CUDA. As Isaac Lab's own scripts do
    for the other libraries, the learner follows ``--device`` unless ``agent.device=`` says
    otherwise."""
    if device is None or any(re.match(r"\+{0,2}agent\.device=", a) for a in passthrough):
        return passthrough
    console.print(f"the learner follows --device: agent.device={device}")
    return [*passthrough, f"agent.device={device}"]


def _train(args: argparse.Namespace, passthrough: list[str], console: Console) -> int:
    """`isaaclab train` in a child process (its own simulation), then the stage here."""
    from postconv.hook import ENV_RUN_DIR_FILE, ENV_SWITCH
    from postconv.stage import check_task, run_stage

    train_args = argparse.ArgumentParser(add_help=False)
    train_args.add_argument("--task")
    train_args.add_argument("--device", default=None)
    train_args.add_argument("--seed", type=int, default=0)
    known, _ = train_args.parse_known_args(passthrough)
    if not known.task:
        console.print("[red]error:[/] give the task to train, e.g. --task PostConv-Velocity-Flat-G1")
        return 2
    # evaluate where Isaac Lab trained: its default is the GPU when there is one. Isaac Lab's
    # --seed -1 draws a random training seed; the stage's common random numbers then use 0
    args.task, args.device, args.seed = known.task, known.device or _default_device(), max(known.seed, 0)
    try:  # every stage option checked now, not after hours of training
        config = stage_config(args)
        check_task(known.task, config)
    except ValueError as err:
        sizes = (
            "--num_envs",
            "--envs-per-checkpoint",
            "--steps",
            "--burn-in",
            "--num-seeds",
            "checkpoints_per_job",
        )
        hint = (
            " (in postconv train the evaluation's sizes take an eval- prefix: --eval-num_envs, "
            "--eval-envs-per-checkpoint, --eval-steps, ...)"
            if any(o in str(err) for o in sizes)
            else ""
        )
        raise ValueError(f"{err}{hint}; nothing was trained") from err
    passthrough = with_learner_device(passthrough, known.device, console)
    isaaclab = Path(sys.executable).with_name("isaaclab")
    command = [str(isaaclab) if isaaclab.exists() else "isaaclab", "train", *passthrough]
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "run_dir"
        started = time.time()
        console.print(f"[bold]training:[/] {' '.join(command)}")
        proc = subprocess.run(command, env={**os.environ, ENV_SWITCH: "0", ENV_RUN_DIR_FILE: str(record)})
        if proc.returncode != 0:
            console.print(f"[red]error:[/] isaaclab train exited with {proc.returncode}; no selection")
            return proc.returncode
        run_dir = Path(record.read_text()) if record.exists() else _newest_run(Path("logs/rsl_rl"), started)
    if run_dir is None:
        console.print("[red]error:[/] training finished but wrote no run folder under logs/rsl_rl")
        return 1
    console.print(f"[bold]post-convergence stage on[/] {run_dir} (resume it with `postconv run {run_dir}`)")
    run_stage(run_dir, config, console)
    return 0


def _train_mujoco(args: argparse.Namespace, console: Console) -> int:
    from postconv.cputrain.env import PushCurriculum, StandEnvConfig
    from postconv.cputrain.train import TrainConfig, train

    env = StandEnvConfig(
        num_envs=args.num_envs,
        seed=args.seed,
        threads=args.threads,
        curriculum=PushCurriculum() if args.curriculum else None,
    )
    config = TrainConfig(
        iterations=args.iterations, env=env, log_root=args.log_root, run_dir=args.run_dir, resume=args.resume
    )
    run_dir = train(config)
    if args.stage:
        from postconv.stage import StageConfig, run_stage

        run_stage(run_dir, StageConfig(), console)
    else:
        console.print(f"next: postconv run {run_dir}")
    return 0


def _outcomes(args: argparse.Namespace, console: Console) -> int:
    from postconv import outcomes as oc

    judgement = oc.judge(args.run_dir, args.outcomes, tuple(args.lower_is_better), source="real")
    oc.publish(args.run_dir, judgement, console, wandb=args.wandb)
    return 0


def _fetch(args: argparse.Namespace, console: Console) -> int:
    from postconv.wandb_fetch import fetch_run, open_remote_run, parse_run_path

    fetched = fetch_run(open_remote_run(parse_run_path(args.wandb_run)), root=args.into, task=args.task)
    console.print(
        f"{fetched.checkpoints} checkpoints in [bold]{fetched.run_dir}[/] ({fetched.downloaded} files downloaded now, "
        f"training curve: {fetched.curve_points or 'kept or none'} points)\n"
        f"next: postconv run {fetched.run_dir}"
    )
    return 0


def _default_device() -> str:
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def _newest_run(root: Path, since: float) -> Path | None:
    runs = [p.parent for p in root.glob("*/*/run.json") if p.stat().st_mtime >= since]
    return max(runs, key=lambda p: p.stat().st_mtime, default=None)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    if argv[:1] == ["study"]:
        from postconv.study.run import main as study_main

        return study_main(argv[1:])
    if argv[:1] == ["train"]:
        args, passthrough = parser.parse_known_args(argv)
    else:
        args, passthrough = parser.parse_args(argv), []
    from postconv.report import wide_console
    from postconv.run_lock import RunBusyError
    from postconv.selection import SolverError

    console = wide_console()
    # Ctrl-C and a polite kill (SIGTERM) clean up alike: partial sample folders are removed
    interrupt.install()
    try:
        if args.command == "select":
            return _select(args, console)
        if args.command == "train":
            return _train(args, passthrough, console)
        if args.command == "demo":
            return main(["train", *DEMO_TRAIN])
        if args.command == "train-mujoco":
            return _train_mujoco(args, console)
        if args.command == "outcomes":
            return _outcomes(args, console)
        if args.command == "fetch":
            return _fetch(args, console)
        if args.command == "sim2sim":
            from postconv.sim2sim.judge import run_and_judge

            run_and_judge(args.run_dir, sim2sim_config(args), console)
            return 0
        from postconv import stage

        config = stage_config(args)
        if args.command == "evaluate":
            stage.evaluate(args.run_dir, config, console)
        else:
            stage.run_stage(args.run_dir, config, console)
        return 0
    except KeyboardInterrupt:
        resume = "`postconv run RUN_DIR`" if args.command == "train" else "the same command again"
        console.print(f"[yellow]interrupted[/]: finished sample sets are kept; run {resume} to resume")
        return 130
    except (ValueError, OSError, ModuleNotFoundError, SolverError, RunBusyError) as err:
        # what a user can cause (a bad option or file, a full disk, samples the solver cannot
        # handle) gets its message without a traceback
        console.print(f"[red]error:[/] {err}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
