"""Drive Isaac Lab's PostConv-Stand-G1 and print states with the reward terms it computed, as JSON.

Run as a subprocess by test_stand_twin.py (Isaac Lab keeps one simulation per process).
Usage: probe_stand.py NUM_ENVS STEPS

Random actions move the envs; after each step the reached state, the actions, the weighted
reward terms Isaac Lab computed on that state and the termination flags are recorded, for
the C MuJoCo twin to recompute from the same state.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

torch.set_num_threads(1)

from probe_sim2sim import snapshot  # noqa: E402


def main() -> None:
    num_envs, steps = (int(x) for x in sys.argv[1:3])
    from postconv.evaluation.rollout import open_env
    from postconv.tasks.scenarios import NO_PUSH
    from postconv.tasks.velocity import make_eval_cfg

    cfg = make_eval_cfg("stand", NO_PUSH, num_envs=num_envs, seed=0)
    gen = torch.Generator().manual_seed(1)
    records = []
    with open_env(cfg, "cpu") as env:
        env.reset()
        robot = env.scene["robot"]
        for _ in range(steps):
            actions = 0.8 * torch.randn(num_envs, 29, generator=gen)
            prev = env.action_manager.action.clone()
            _, _, terminated, truncated, _ = env.step(actions)
            if bool((terminated | truncated).any()):
                break  # a reset replaces the state the rewards were computed on
            records.append(
                {
                    "state": snapshot(env),
                    "actions": actions.tolist(),
                    "prev_actions": prev.tolist(),
                    "step_reward": env.reward_manager._step_reward.tolist(),
                }
            )
        record = {
            "steps": records,
            "reward_terms": list(env.reward_manager.active_terms),
            "termination_terms": list(env.termination_manager.active_terms),
            "soft_limits": robot.data.soft_joint_pos_limits.torch[0].tolist(),
            "step_dt": env.step_dt,
            "max_episode_length": int(env.max_episode_length),
        }
    print("PROBE " + json.dumps(record))


if __name__ == "__main__":
    main()
