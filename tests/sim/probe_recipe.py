"""Build a G1 velocity task kit-less, put the robot in chosen states, and print what its terms say, as JSON.

Run as a subprocess by test_recipe.py (Isaac Lab keeps one simulation per process).
Usage: probe_recipe.py {train,eval}

``train``: the flat task's training config on 4 envs. Env 0 stands in the default pose;
env 1 is tilted 75 degrees about y; env 2 has every arm joint 0.3 rad off its default;
env 3 kneels (pelvis at 0.4 m). The reward and termination managers are evaluated on these
states as written (no physics step in between), then all four settle on their feet for
0.5 s to read the friction of their foot contacts. ``eval``: the evaluation variant's foot
contacts after the same settling, then the angular momentum after a step of random actions.
"""

from __future__ import annotations

import json
import math
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

torch.set_num_threads(1)

from probe_sim2sim import snapshot  # noqa: E402

NUM_ENVS = 4
TILT = math.radians(75.0)
ARM_OFFSET = 0.3
KNEEL_HEIGHT = 0.4


def _config(kind: str):
    from isaaclab_tasks.utils import resolve_task_config

    import postconv.tasks.registry  # noqa: F401  (the tasks in gymnasium's registry)
    from postconv.tasks import FLAT_TASK
    from postconv.tasks.scenarios import NO_PUSH
    from postconv.tasks.velocity import make_eval_cfg

    if kind == "eval":
        return make_eval_cfg("flat", NO_PUSH, num_envs=NUM_ENVS, seed=0)
    cfg, _ = resolve_task_config(FLAT_TASK, "rsl_rl_cfg_entry_point", overrides=[])
    cfg.scene.num_envs = NUM_ENVS
    cfg.seed = 0
    cfg.events.reset_base.params["pose_range"] = {}
    return cfg


def _place(env) -> None:
    """Write the four probe states (see the module docstring) and refresh the data buffers."""
    robot = env.scene["robot"]
    pose = robot.data.default_root_pose.torch.clone()
    pose[:, :3] += env.scene.env_origins
    half = TILT / 2  # a rotation of TILT about y, quaternion (x, y, z, w)
    pose[1, 3:7] = torch.tensor([0.0, math.sin(half), 0.0, math.cos(half)])
    pose[3, 2] = KNEEL_HEIGHT
    robot.write_root_pose_to_sim_index(root_pose=pose)
    robot.write_root_velocity_to_sim_index(root_velocity=torch.zeros(NUM_ENVS, 6))
    q = robot.data.default_joint_pos.torch.clone()
    arms = [i for i, n in enumerate(robot.joint_names) if any(k in n for k in ("shoulder", "elbow", "wrist"))]
    q[2, arms] += ARM_OFFSET
    robot.write_joint_state_to_sim_index(position=q, velocity=torch.zeros_like(q))
    env.sim.forward()
    env.scene.update(dt=env.physics_dt)


def _terms(env) -> dict:
    """Each reward term's unweighted value per env, and each termination term's flags."""
    rewards = env.reward_manager
    values = {}
    for name in rewards.active_terms:
        cfg = rewards.get_term_cfg(name)
        values[name] = cfg.func(env, **cfg.params).tolist()
    terminations = env.termination_manager
    done = {}
    for name in terminations.active_terms:
        cfg = terminations.get_term_cfg(name)
        done[name] = cfg.func(env, **cfg.params).tolist()
    return {"rewards": values, "terminations": done}


def _foot_contacts(env) -> dict:
    """Per env: the friction of its foot-ground contacts, and its feet's own coefficients."""
    manager = env.sim.physics_manager
    solver, model = manager._solver, manager.get_model()
    data = solver.mjw_data
    count = int(data.nacon.numpy()[0])
    geoms = data.contact.geom.numpy()[:count]
    friction = data.contact.friction.numpy()[:count, 0]
    world = data.contact.worldid.numpy()[:count]
    body_of_geom = solver.mjw_model.geom_bodyid.numpy()
    ground = [g for g in range(solver.mjw_model.ngeom) if body_of_geom[g] == 0]
    labels = list(model.shape_label)
    mu = model.shape_material_mu.numpy()
    out = []
    for w in range(NUM_ENVS):
        mine = (world == w) & np.isin(geoms, ground).any(axis=1)
        feet = [
            i
            for i, label in enumerate(labels)
            if f"/env_{w}/" in label and "foot" in label and "collision" in label
        ]
        out.append({"contact_friction": friction[mine].tolist(), "foot_mu": mu[feet].tolist()})
    ground_mu = [float(mu[i]) for i, label in enumerate(labels) if label.startswith("/World/ground")]
    return {"per_env": out, "ground_mu": ground_mu}


def main() -> None:
    kind = sys.argv[1]
    from postconv.evaluation.rollout import open_env

    with open_env(_config(kind), "cpu") as env:
        env.reset()
        record = {"reward_terms": list(env.reward_manager.active_terms)}
        if kind == "train":
            _place(env)
            record.update(_terms(env))
        env.reset()
        zero = torch.zeros(env.num_envs, env.action_manager.total_action_dim)
        for _ in range(25):
            env.step(zero)
        record["contacts"] = _foot_contacts(env)
        # angular momentum of a moving robot, in the evaluation variant (no center-of-mass draw,
        # so the bodies are the MJCF's)
        if kind == "eval":
            from postconv.tasks.mdp import angular_momentum

            env.step(torch.randn(zero.shape, generator=torch.Generator().manual_seed(1)))
            record["moving_states"] = snapshot(env)
            record["angular_momentum"] = angular_momentum(env).tolist()
    print("PROBE " + json.dumps(record))


if __name__ == "__main__":
    main()
