"""The ``postconv`` command's options: the parser and the configs it builds.

Light by design: building the parser imports no simulator, torch or W&B (the commands
import what they run), so ``postconv --help`` and a bad option answer at once. The
training hook reads its stage options here too.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from postconv import __version__
from postconv.ranking.config import PICK_RULES
from postconv.selection import divergences

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
    g.add_argument(
        "--primary-k",
        type=float,
        default=2.0,
        help="the radius that ranks the checkpoints (whose best --pick weighs)",
    )
    g.add_argument(
        "--divergence", choices=list(divergences.names()), default="kl", help="the ball's divergence"
    )
    g.add_argument("--n-boot", type=int, default=200, help="bootstrap replicates (0: no intervals)")
    g.add_argument("--level", type=float, default=0.9, help="interval coverage")
    g.add_argument(
        "--pick", choices=list(PICK_RULES), default="evidence",
        help="the checkpoint to recommend: evidence, the last checkpoint unless the best worst case beats it "
        "in a share --pick-p of the bootstrap replicates; worst-case, the best worst case; last, the last checkpoint",
    )  # fmt: skip
    g.add_argument(
        "--pick-p", type=float, default=0.9,
        help="(--pick evidence) share of replicates the worst case's pick must beat the last checkpoint in",
    )  # fmt: skip
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
    from postconv.tasks.features import FEATURES
    from postconv.tasks.scenarios import DEFAULT_SCENARIOS, MILD_DYNAMICS

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
    from postconv.sim2sim.config import Sim2SimConfig

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
    from postconv.sim2sim.config import KINDS, StressConfig

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
                   help="do not film the picks (chosen, worst case's, mean's, last) side by side")  # fmt: skip


def sim2sim_config(args: argparse.Namespace):
    from postconv.sim2sim.config import Sim2SimConfig, StressConfig

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


def build_parser() -> argparse.ArgumentParser:
    from postconv.sim2sim.worlds import SHIFTS

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
        "--lower-is-better",
        nargs="+",
        default=[],
        metavar="METRIC",
        help="metrics where less is better (put it after RUN_DIR and the CSV: it takes every name that follows)",
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
    # None: the defaults below, or with --resume what the run was started with (twin.json)
    tm.add_argument("--iterations", type=int, help="PPO iterations (24 steps of every env) (default: 1000)")
    tm.add_argument("--num_envs", type=int, help="worlds stepped together (default: 256)")
    tm.add_argument("--seed", type=int, help="training seed (default: 0)")
    tm.add_argument("--threads", type=int, help="mujoco.rollout threads (default: every core)")
    tm.add_argument("--log-root", type=Path, default=Path("logs/rsl_rl"), help="experiments folder")
    tm.add_argument("--run-dir", type=Path, help="exact run folder (with --resume: the run to continue)")
    tm.add_argument(
        "--resume", action="store_true",
        help="continue --run-dir from its last checkpoint, with the envs, seed and curriculum it was started with",
    )  # fmt: skip
    tm.add_argument(
        "--no-curriculum",
        dest="curriculum",
        action="store_const",
        const=False,
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
        f"{', '.join(SHIFTS)} (e.g. strength=0.8,latency=20ms push=1@2-4 command=turn:1).",
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
        help="the main job at CPU size: train the flat G1 task briefly, then the stage with pushes (~5 min)",
        description=f"Runs: postconv train {' '.join(DEMO_TRAIN)}",
    )
    for command in sub.choices.values():
        command.formatter_class = _HelpWithDefaults
    return parser


class _HelpWithDefaults(argparse.HelpFormatter):
    """Help that ends each option's line with its default, where it has one worth saying."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or action.nargs == 0  # a switch: its help says what it does
            or default is None
            or default is argparse.SUPPRESS
            or "default" in text
        ):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else str(default)
        # argparse %-formats help: the default's own text must not be read as a format
        return text.replace("%", "%%") + f" (default: {(shown or 'none').replace('%', '%%')})"


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


def selection_config(args: argparse.Namespace):
    """The :class:`~postconv.ranking.config.SelectionConfig` of parsed CLI arguments (a command
    without selection options, ``evaluate``, keeps the defaults)."""
    from postconv.ranking.config import SelectionConfig

    chosen = {
        name: getattr(args, name)
        for name in ("primary_k", "divergence", "n_boot", "level", "pick", "pick_p")
        if hasattr(args, name)
    }
    if hasattr(args, "k"):
        chosen["k"] = tuple(args.k)
    return SelectionConfig(**chosen, seed=args.seed)


def stage_config(args: argparse.Namespace):
    """The :class:`~postconv.stage.config.StageConfig` of parsed CLI arguments."""
    from postconv.stage.config import StageConfig

    selection = selection_config(args)
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
    """The :class:`~postconv.stage.config.StageConfig` that ``postconv run RUN_DIR *extra`` would use,
    or a ValueError naming the bad option (how the training hook checks its stage args early)."""
    import contextlib
    import io

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = build_parser().parse_args(["run", "RUN_DIR", *extra])
    except SystemExit as exit_:
        lines = [x for x in err.getvalue().splitlines() if x.strip()]
        raise ValueError(f"stage options {extra}: {lines[-1] if lines else exit_}") from None
    return stage_config(args)
