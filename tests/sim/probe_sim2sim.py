"""Drive Isaac Lab's flat G1 eval env and print its states, observations and targets as JSON.

Run as a subprocess by test_sim2sim_contract.py (Isaac Lab keeps one simulation per process).
Usage: probe_sim2sim.py NUM_ENVS WARMUP_STEPS REPLAY_STEPS [CHECKPOINT]

The envs are driven for WARMUP_STEPS with random actions (or the checkpoint's) so that they
move; then every state the contract reads is recorded with the observation Isaac Lab
computed from it. Then REPLAY_STEPS steps of recorded actions are applied and the joint and
base trajectories recorded, for the MuJoCo world to replay from the same state.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

torch.set_num_threads(1)


def snapshot(env) -> dict:
    robot = env.scene["robot"]
    d = robot.data
    return {
        "root_pose_xyzw": d.root_link_pose_w.torch.tolist(),
        "root_link_vel_w": d.root_link_vel_w.torch.tolist(),
        "joint_pos": d.joint_pos.torch.tolist(),
        "joint_vel": d.joint_vel.torch.tolist(),
    }


def main() -> None:
    num_envs, warmup, replay = (int(x) for x in sys.argv[1:4])
    checkpoint = sys.argv[4] if len(sys.argv) > 4 else None
    from postconv.evaluation.rollout import open_env
    from postconv.tasks.scenarios import NO_PUSH
    from postconv.tasks.velocity import make_eval_cfg

    cfg = make_eval_cfg("flat", NO_PUSH, num_envs=num_envs, seed=0)
    actor = None
    if checkpoint:
        from postconv.evaluation.policy import load_actor

        actor = load_actor(checkpoint, {"actor": {"activation": "elu"}})
    gen = torch.Generator().manual_seed(0)
    with open_env(cfg, "cpu") as env:
        obs = env.reset()[0]["policy"]
        for _ in range(warmup):
            actions = actor(obs) if actor is not None else 0.5 * torch.randn(num_envs, 29, generator=gen)
            out, _, terminated, truncated, _ = env.step(actions)
            obs = out["policy"]
            if bool((terminated | truncated).any()):
                raise SystemExit("an env ended during the warm-up: shorten it")
        term = env.action_manager.get_term("joint_pos")
        record = {
            "state": snapshot(env),
            "obs": obs.tolist(),
            "obs_terms": env.observation_manager.active_terms["policy"],
            "command": env.command_manager.get_command("base_velocity").tolist(),
            "last_action": env.action_manager.action.tolist(),
            "target": term.processed_actions.tolist(),
            "joint_names": list(env.scene["robot"].joint_names),
            "actor_actions": actor(obs).tolist() if actor is not None else None,
        }
        actions_seq, trajectory = [], []
        for _ in range(replay):
            actions = actor(obs) if actor is not None else 0.3 * torch.randn(num_envs, 29, generator=gen)
            actions_seq.append(actions.tolist())
            out, _, terminated, truncated, _ = env.step(actions)
            obs = out["policy"]
            trajectory.append(snapshot(env))
        record["replay_actions"] = actions_seq
        record["replay"] = trajectory
    print("PROBE " + json.dumps(record))


if __name__ == "__main__":
    main()
