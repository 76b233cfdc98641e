"""Env-steps per second of the G1 tasks on this machine, beside raw physics stepping.

    .venv/bin/python benchmarks/bench_tasks.py                 # 16 and 64 envs, both tasks
    .venv/bin/python benchmarks/bench_tasks.py --envs 16 --steps 50

For each task and env count, one process builds the environment and times (1) full env
steps with the managers (actions, observations, rewards, terminations, events, commands)
and (2) the physics alone: the same number of decimated simulation steps with the scene
written and read, nothing else. The ratio is the share of time the physics takes; the rest
is the task's managers. Both are timed from a fresh reset, alternating, best of three. Each measurement runs in its own process (one simulation per
process) after a warm-up; run it once first to fill Warp's kernel cache.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from rich.console import Console
from rich.table import Table


def measure(task: str, num_envs: int, steps: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from isaaclab_tasks.utils import resolve_task_config

    import postconv.tasks
    import postconv.tasks.registry  # noqa: F401  (the tasks in gymnasium's registry)

    cfg, _ = resolve_task_config(task, "rsl_rl_cfg_entry_point", overrides=[])
    cfg.scene.num_envs = num_envs
    from postconv.evaluation.rollout import open_env

    with open_env(cfg, "cpu") as env:
        action = torch.zeros(env.num_envs, env.action_manager.total_action_dim)
        physics_dt = env.physics_dt

        def env_steps() -> None:
            for _ in range(steps):
                env.step(action)

        def physics_steps() -> None:
            for _ in range(steps):
                for _ in range(env.cfg.decimation):
                    env.scene.write_data_to_sim()
                    env.sim.step(render=False)
                    env.scene.update(dt=physics_dt)

        # Both from a fresh reset, alternating, best of three: the robots' state (standing,
        # falling, lying) changes the contact count and so the physics cost.
        times = {"full_s": [], "raw_s": []}
        for _ in range(3):
            for key, run in (("full_s", env_steps), ("raw_s", physics_steps)):
                env.reset()
                env.step(action)  # first step after a reset outside the timing
                start = time.perf_counter()
                run()
                times[key].append(time.perf_counter() - start)
    return {"task": task, "envs": num_envs, "steps": steps, **{k: min(v) for k, v in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--steps", type=int, default=40, help="env steps timed per measurement (40: 0.8 s)")
    parser.add_argument("--child", nargs=3, metavar=("TASK", "ENVS", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        task, envs, steps = args.child
        print(json.dumps(measure(task, int(envs), int(steps))))
        return

    from postconv.tasks import DISTURBED_TASK, FLAT_TASK

    console = Console()
    table = Table(
        title=f"G1 tasks on this CPU (Newton MuJoCo-Warp, kit-less): best of 3 x {args.steps} env steps, zero action"
    )
    for col in ("task", "envs", "task env-steps/s", "physics-only env-steps/s", "physics share of a step"):
        table.add_column(col, justify="right")
    for task in (FLAT_TASK, DISTURBED_TASK):
        label = task.removeprefix("PostConv-Velocity-").removesuffix("-G1").lower()
        for envs in args.envs:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", task, str(envs), str(args.steps)],
                capture_output=True,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            if proc.returncode != 0:
                console.print(f"[red]{task} x {envs} failed:[/] {proc.stderr[-2000:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            n = r["envs"] * r["steps"]
            table.add_row(
                label,
                str(envs),
                f"{n / r['full_s']:.0f}",
                f"{n / r['raw_s']:.0f}",
                f"{r['raw_s'] / r['full_s']:.0%}",
            )
    console.print(table)


if __name__ == "__main__":
    main()
