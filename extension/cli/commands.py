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
from pathlib import Path

from rich.console import Console

from postconv import interrupt
from postconv.cli.options import (
    DEMO_DIR,
    DEMO_TRAIN,
    build_parser,
    selection_config,
    sim2sim_config,
    stage_config,
)


def _select(args: argparse.Namespace, console: Console) -> int:
    from postconv.ranking.result import write_results
    from postconv.review.console_report import print_summary
    from postconv.storage.demo import demo_samples
    from postconv.storage.samples_file import save_samples

    if args.demo == (args.samples is not None):
        console.print("[red]give a run folder, a samples file or --demo[/]")
        return 2
    if args.samples is not None and args.samples.is_dir():
        from postconv.stage.run import select_run

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
    config = selection_config(args)
    result = _select_file(path, config, console)
    paths = write_results(result, args.out or path.parent)
    print_summary(result, paths, console)
    return 0


def _select_file(path: Path, config, console: Console):
    """The selection on a samples file: loaded whole, or streamed in chunks when it is large
    (psi over :data:`~postconv.ranking.select.STREAM_SAMPLES` samples) and stored uncompressed."""
    from rich.markup import escape

    from postconv.ranking import select as selecting
    from postconv.review.console_report import pass_progress, streamed_summary
    from postconv.selection.ranking import MIN_GROUP_SIZE
    from postconv.storage.file_source import NotStreamable, NpzSource, psi_shape
    from postconv.storage.samples_file import load_samples

    shape = psi_shape(path)
    if shape is not None and math.prod(shape) > selecting.STREAM_SAMPLES:
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
            with pass_progress(console, f"selecting among {len(source.names)} checkpoints") as progress:
                source.progress = progress
                result = selecting.select_source(source, source.names, source.sense, config)
            console.print(f"selected from {escape(streamed_summary(result, path.name))}")
            return result
    samples = load_samples(path)
    with console.status(f"selecting among {len(samples.names)} checkpoints"):
        return selecting.select(samples, config)


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
    from postconv.stage.run import check_task, run_stage
    from postconv.tasks.logger import ENV_RUN_DIR_FILE, ENV_SWITCH

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
    from dataclasses import replace

    from postconv.cputrain.env import PushCurriculum, StandEnvConfig
    from postconv.cputrain.train import TrainConfig, run_folder, train, training_settings

    given = {key: getattr(args, key) for key in ("iterations", "num_envs", "seed", "curriculum")}
    settings = training_settings(given, args.run_dir, args.resume)
    env = StandEnvConfig(
        num_envs=settings["num_envs"],
        seed=settings["seed"],
        threads=args.threads,
        curriculum=PushCurriculum() if settings["curriculum"] else None,
    )
    config = TrainConfig(
        iterations=settings["iterations"],
        env=env,
        log_root=args.log_root,
        run_dir=args.run_dir,
        resume=args.resume,
    )
    config = replace(config, run_dir=run_folder(config))  # named now, so an interruption can name it
    try:
        run_dir = train(config)
    except KeyboardInterrupt:
        console.print(
            f"[yellow]interrupted[/]: the checkpoints are kept; go on with: postconv train-mujoco --run-dir "
            f"{config.run_dir} --resume --iterations {config.iterations}"
        )
        return 130
    if args.stage:
        from postconv.stage.config import StageConfig
        from postconv.stage.run import run_stage

        try:
            run_stage(run_dir, StageConfig(), console)
        except KeyboardInterrupt:
            console.print(
                f"[yellow]interrupted[/]: the training is done and finished sample sets are kept; go on with: "
                f"postconv run {run_dir}"
            )
            return 130
    else:
        console.print(f"next: postconv run {run_dir}")
    return 0


def _outcomes(args: argparse.Namespace, console: Console) -> int:
    from postconv.review import outcomes as oc

    judgement = oc.judge(args.run_dir, args.outcomes, tuple(args.lower_is_better), source="real")
    oc.publish(args.run_dir, judgement, console, wandb=args.wandb)
    return 0


def _fetch(args: argparse.Namespace, console: Console) -> int:
    from postconv.dashboard.fetch import fetch_run, open_remote_run, parse_run_path

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
    parser = build_parser()
    if argv[:1] == ["study"]:
        from postconv.study.run import main as study_main

        return study_main(argv[1:])
    if argv[:1] == ["train"]:
        args, passthrough = parser.parse_known_args(argv)
    else:
        args, passthrough = parser.parse_args(argv), []
    from postconv.console import wide_console
    from postconv.selection.errors import SolverError
    from postconv.storage.run_lock import RunBusyError

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
        config = stage_config(args)  # every option checked before the stage's heavy imports
        from postconv.stage import run as stage

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
