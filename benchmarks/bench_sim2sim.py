"""Env-steps per second of the G1 in C MuJoCo (postconv.sim2sim) against Isaac Lab's CPU stepping.

    .venv/bin/python benchmarks/bench_sim2sim.py            # Isaac Lab 64 envs; sim2sim 64, 256, 1024 envs
    .venv/bin/python benchmarks/bench_sim2sim.py --quick    # Isaac Lab 16 envs; sim2sim 64, 256 envs

In one process, first the baseline: the flat task's eval env (no pushes), built kit-less on
the CPU (Newton MuJoCo-Warp), stepped with a policy in the loop. Then ``postconv.sim2sim``:
a ``WorldBatch`` of the nominal world, C checkpoints x E episodes, stepped by
``mujoco.rollout`` on 1 and 2 threads. Every policy is a random-weight actor of the tasks'
shape ([99 -> 256 -> 128 -> 128 -> 29], elu, last layer scaled down so actions are small),
C of them in a ``GroupPolicy`` in both simulators. Env-steps/s = policy steps x envs stepped
per second of wall time. Random policies fall within a second or two and sim2sim stops an
env that falls, so its episodes are short (1 s) and only the envs actually stepped are
counted; Isaac Lab resets fallen envs and steps all of them.
"""

from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from postconv.evaluation.policy import DeterministicActor
from postconv.evaluation.rollout import GroupPolicy

CHECKPOINTS = 8
EPISODE_S = 1.0
WARMUP_STEPS = 10


def random_actor(seed: int) -> DeterministicActor:
    torch.manual_seed(seed)
    layers = [nn.Linear(i, o) for i, o in zip((99, 256, 128, 128), (256, 128, 128, 29), strict=True)]
    with torch.no_grad():
        layers[-1].weight.mul_(0.01)
        layers[-1].bias.mul_(0.01)
    return DeterministicActor(layers, "elu", None, None)


def group_policy(envs: int) -> GroupPolicy:
    return GroupPolicy([random_actor(i) for i in range(CHECKPOINTS)], envs // CHECKPOINTS, "cpu")


def isaac_lab(envs: int, steps: int) -> float:
    """Env-steps/s of the flat eval env on the CPU, policy in the loop."""
    from postconv.evaluation.rollout import open_env
    from postconv.tasks.scenarios import NO_PUSH
    from postconv.tasks.velocity import make_eval_cfg

    policy = group_policy(envs)
    with open_env(make_eval_cfg("flat", NO_PUSH, num_envs=envs, seed=0), "cpu") as env:
        obs = env.reset()[0]["policy"]
        for i in range(WARMUP_STEPS + steps):
            if i == WARMUP_STEPS:
                start = time.perf_counter()
            obs = env.step(policy(obs))[0]["policy"]
        return steps * envs / (time.perf_counter() - start)


def sim2sim(envs: int, threads: int, min_seconds: float) -> tuple[float, float]:
    """Env-steps/s of a nominal-world batch of ``envs`` and the share of env-steps stepped (not fallen)."""
    from postconv.sim2sim.batch import WorldBatch, thread_pool
    from postconv.sim2sim.config import EpisodeSpec
    from postconv.sim2sim.worlds import parse_world, world_model

    world = parse_world("nominal")
    spec = EpisodeSpec(episodes=envs // CHECKPOINTS, seconds=EPISODE_S)
    policy = group_policy(envs)
    stepped: list[int] = []  # envs stepped at each policy step
    runs = 0
    with thread_pool(threads) as pool:
        batch = WorldBatch(world_model(world), world, spec, pool)
        start = time.perf_counter()
        while time.perf_counter() - start < min_seconds:  # whole episodes, until min_seconds
            batch.run(policy, CHECKPOINTS, on_steps=stepped.append)
            runs += 1
        seconds = time.perf_counter() - start
    return sum(stepped) / seconds, sum(stepped) / (runs * envs * spec.steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and smaller measurements (a few minutes)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lab_envs, steps = (16, 20) if args.quick else (64, 100)
    sizes = (64, 256) if args.quick else (64, 256, 1024)
    min_seconds = 2.0 if args.quick else 4.0

    console = Console()
    with console.status(
        f"Isaac Lab: {lab_envs} envs x {steps} steps (the first build compiles Warp kernels)"
    ):
        baseline = isaac_lab(lab_envs, steps)
    rows = [("Isaac Lab", "-", lab_envs, baseline, 1.0)]
    for threads in (1, 2):
        for envs in sizes:
            with console.status(f"sim2sim: {threads} thread(s), {envs} envs"):
                rate, alive = sim2sim(envs, threads, min_seconds)
            rows.append(("sim2sim", str(threads), envs, rate, alive))

    table = Table(
        title=f"G1 env-steps/s on this CPU, policy in the loop ({CHECKPOINTS} random-weight checkpoints)",
        caption=f"Isaac Lab: Newton MuJoCo-Warp, kit-less; sim2sim: C MuJoCo in mujoco.rollout, {EPISODE_S:g} s "
        f"episodes repeated for >= {min_seconds:g} s; stepped: share of env-steps not skipped after a fall",
    )
    for col in ("simulator", "threads", "envs", "env-steps/s", "stepped", "x Isaac Lab"):
        table.add_column(col, justify="right")
    for name, threads, envs, rate, alive in rows:
        table.add_row(name, threads, str(envs), f"{rate:.0f}", f"{alive:.0%}", f"{rate / baseline:.1f}x")
    console.print(table)
    best = max(rows[1:], key=lambda r: r[3])
    console.print(
        f"best: {best[3] / baseline:.1f}x Isaac Lab ({best[1]} thread(s), {best[2]} envs) -- goal: >= 15x"
    )


if __name__ == "__main__":
    main()
