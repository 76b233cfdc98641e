"""Build one G1 task kit-less on the CPU, drive it, and print what the tests check as JSON.

Run as a subprocess by test_tasks.py: Isaac Lab keeps one simulation per process, and its
config resolution reads sys.argv. Usage: probe_env.py {flat,disturbed,nopush} NUM_ENVS STEPS
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

torch.set_num_threads(1)


def _config(kind: str, num_envs: int):
    from isaaclab_tasks.utils import resolve_task_config

    from postconv.tasks import DISTURBED_TASK, FLAT_TASK
    from postconv.tasks.scenarios import NO_PUSH
    from postconv.tasks.velocity import make_eval_cfg

    if kind == "nopush":
        cfg = make_eval_cfg("disturbed", NO_PUSH, num_envs=num_envs, seed=0)
    else:
        task = FLAT_TASK if kind == "flat" else DISTURBED_TASK
        cfg, _ = resolve_task_config(task, "rsl_rl_cfg_entry_point", overrides=[])
        cfg.scene.num_envs = num_envs
        cfg.seed = 0
    cfg.sim.device = "cpu"
    if kind == "flat":
        # standing check: start still, in the default pose
        cfg.events.reset_base.params["velocity_range"] = {}
        cfg.events.reset_base.params["pose_range"] = {}
    return cfg


def main() -> None:
    kind, num_envs, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cfg = _config(kind, num_envs)
    from isaaclab.app import launch_simulation

    with launch_simulation(cfg, {"headless": True, "device": "cpu"}):
        from isaaclab.envs import ManagerBasedRLEnv

        env = ManagerBasedRLEnv(cfg=cfg)
        robot = env.scene["robot"]
        pushes: list[dict] = []
        if "push_robot" in env.event_manager.active_terms.get("interval", []):
            term = env.event_manager.get_term_cfg("push_robot")
            push = term.func

            def recorded(env_, env_ids, *args, **kwargs):
                before = robot.data.root_lin_vel_w.torch[env_ids, :2].clone()
                push(env_, env_ids, *args, **kwargs)
                after = robot.data.root_lin_vel_w.torch[env_ids, :2].clone()
                pushes.append({"step": step, "envs": len(env_ids), "dv": (after - before).tolist()})

            term.func = recorded
            env.event_manager.set_term_cfg("push_robot", term)
        env.reset()
        zero = torch.zeros(env.num_envs, env.action_manager.total_action_dim)
        heights, terminated, finite = [], 0, True
        generator = torch.Generator().manual_seed(0)
        for step in range(steps):
            # the first half still (zero action: hold the default pose), then random actions
            action = zero if step < steps // 2 else torch.rand(zero.shape, generator=generator) * 2 - 1
            _, reward, term, _, _ = env.step(action)
            terms = env.reward_manager._step_reward
            finite &= bool(torch.isfinite(terms).all()) and bool(torch.isfinite(reward).all())
            if step < steps // 2:
                heights.append(robot.data.root_pos_w.torch[:, 2].min().item())
                terminated += int(term.sum())
        print(
            json.dumps(
                {
                    "obs_dim": list(env.observation_manager.group_obs_dim["policy"]),
                    "action_dim": env.action_manager.total_action_dim,
                    "joint_names": list(robot.joint_names),
                    "num_bodies": robot.num_bodies,
                    "reward_terms": list(env.reward_manager.active_terms),
                    "rewards_finite": finite,
                    "step_dt": env.step_dt,
                    "still_min_height": min(heights) if heights else None,
                    "still_terminations": terminated,
                    "pushes": pushes,
                    "push_velocity_range": None
                    if not pushes
                    else env.event_manager.get_term_cfg("push_robot").params["velocity_range"],
                }
            )
        )
        env.close()


if __name__ == "__main__":
    main()
