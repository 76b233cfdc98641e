"""Write a ``+dyn`` scenario's per-env dynamics draws into the evaluation env, read them back
from the MuJoCo-Warp solver, then put the nominal robot back and read again, as JSON.

Run as a subprocess by test_dynamics.py (Isaac Lab keeps one simulation per process).
Usage: probe_dynamics.py {flat,stand}. 4 envs in 2 groups of 2 slots: envs 0 and 2 are
slot 0, envs 1 and 3 slot 1.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

torch.set_num_threads(1)

from probe_recipe import _foot_contacts  # noqa: E402

NUM_ENVS, SLOTS = 4, 2


def _solver_state(env, joint: str) -> dict:
    """Per world: the torso's mass and one joint's position gain as the solver has them, and
    the feet's friction where they meet the ground."""
    solver = env.sim.physics_manager._solver
    model = solver.mjw_model
    body = [i for i in range(model.nbody) if solver.mj_model.body(i).name.endswith("torso_link")]
    joint_id = [j for j in range(solver.mj_model.njnt) if solver.mj_model.joint(j).name.endswith(joint)]
    # the joint's position and velocity actuators: their gains are its PD stiffness and damping
    actuators = [i for i in range(model.nu) if solver.mj_model.actuator_trnid[i, 0] == joint_id[0]]
    mass = model.body_mass.numpy()
    gain = model.actuator_gainprm.numpy()[..., 0]
    return {
        "torso_mass": mass[:, body[0]].tolist(),
        "gains": gain[:, actuators].tolist(),
        "contacts": _foot_contacts(env)["per_env"],
    }


def main() -> None:
    from postconv.evaluation.rollout import open_env
    from postconv.tasks import crn
    from postconv.tasks.dynamics import RobotDynamics, draw
    from postconv.tasks.scenarios import MILD_DYNAMICS, NO_PUSH
    from postconv.tasks.velocity import make_eval_cfg

    joint = "left_knee_joint"
    with open_env(make_eval_cfg(sys.argv[1], NO_PUSH, num_envs=NUM_ENVS, seed=0), "cpu") as env:
        common = crn.attach(env, slots=SLOTS, seed=0)
        dynamics = RobotDynamics(env)
        zero = torch.zeros(env.num_envs, env.action_manager.total_action_dim)
        record = {}
        for label, draws in (("nominal", None), ("shifted", "draw"), ("restored", None)):
            common.restart(3)
            if draws is not None:
                draws = draw(MILD_DYNAMICS, common)
                record["draws"] = draws.slots(NUM_ENVS)
            dynamics.apply(draws)
            env.reset()
            for _ in range(25):
                env.step(zero)
            record[label] = _solver_state(env, joint)
    print("PROBE " + json.dumps(record))


if __name__ == "__main__":
    main()
