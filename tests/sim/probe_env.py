"""Build one G1 task kit-less on the CPU, drive it, and print what the tests check as JSON.

Run as a subprocess by test_tasks.py: Isaac Lab keeps one simulation per process, and its
config resolution reads sys.argv. Usage: probe_env.py {flat,disturbed,nopush,evalpush} NUM_ENVS STEPS
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

    import postconv.tasks.registry  # noqa: F401  (the tasks in gymnasium's registry)
    from postconv.tasks import DISTURBED_TASK, FLAT_TASK
    from postconv.tasks.scenarios import NO_PUSH, PushScenario
    from postconv.tasks.velocity import make_eval_cfg

    if kind == "nopush":
        cfg = make_eval_cfg("disturbed", NO_PUSH, num_envs=num_envs, seed=0)
    elif kind == "evalpush":
        cfg = make_eval_cfg("flat", PushScenario("often", (0.2, 0.4), 0.5), num_envs=num_envs, seed=0)
    else:
        task = FLAT_TASK if kind == "flat" else DISTURBED_TASK
        cfg, _ = resolve_task_config(task, "rsl_rl_cfg_entry_point", overrides=[])
        cfg.scene.num_envs = num_envs
        cfg.seed = 0
    if kind == "flat":
        # standing check: start still, in the default pose
        cfg.events.reset_base.params["velocity_range"] = {}
        cfg.events.reset_base.params["pose_range"] = {}
    return cfg


def _push_params(env) -> dict | None:
    if "push_robot" not in env.event_manager.active_terms.get("interval", []):
        return None
    params = env.event_manager.get_term_cfg("push_robot").params
    if "velocity_range" in params:  # Isaac Lab's push term (training)
        return {"velocity": params["velocity_range"]["x"][1]}
    return {"velocity": params["velocity"], "interval_s": params["interval_s"]}  # the evaluation's


def main() -> None:
    kind, num_envs, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cfg = _config(kind, num_envs)
    from postconv.evaluation.rollout import open_env

    # not quiet: the overflow check reads everything the simulator prints
    with open_env(cfg, "cpu", quiet=False) as env:
        robot = env.scene["robot"]
        pushes: list[dict] = []
        # a push is a root-velocity write outside a reset (Isaac Lab's push term and ours alike)
        write_velocity, reset_idx = robot.write_root_velocity_to_sim_index, env._reset_idx
        in_reset = [False]

        def recorded_write(root_velocity, env_ids=None, **kwargs):
            if not in_reset[0]:
                before = robot.data.root_lin_vel_w.torch[env_ids, :2].clone()
                dv = root_velocity[:, :2] - before
                pushes.append({"step": step, "envs": len(env_ids), "dv": dv.tolist()})
            write_velocity(root_velocity=root_velocity, env_ids=env_ids, **kwargs)

        def flagged_reset(env_ids):
            in_reset[0] = True
            try:
                reset_idx(env_ids)
            finally:
                in_reset[0] = False

        robot.write_root_velocity_to_sim_index = recorded_write
        env._reset_idx = flagged_reset
        step = -1
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
                    "push_params": _push_params(env),
                }
            )
        )


if __name__ == "__main__":
    main()
