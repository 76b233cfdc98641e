"""Per-env dynamics draws of a ``+dyn`` evaluation scenario, written into an Isaac Lab G1 env.

Each env slot draws, from the common random numbers' dynamics stream, a strength factor on
its joints' PD gains, a mass added to its torso, a foot friction coefficient and whether its
actions arrive one policy step late (:class:`postconv.tasks.scenarios.DynamicsDraw`). The
draws are made once per seed, right after the streams restart, so every checkpoint meets
the same robot in the same slot, and they hold across respawns. A nominal scenario puts the
robot back as it was built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from isaaclab.managers import SceneEntityCfg

from postconv.tasks.crn import STREAM_DYNAMICS, CommonRandom
from postconv.tasks.mdp import FootFriction
from postconv.tasks.scenarios import DynamicsDraw
from postconv.tasks.velocity import FEET

TORSO = "torso_link"


@dataclass(frozen=True)
class Draws:
    """One dynamics draw per env, ``(N,)`` each."""

    strength: torch.Tensor
    torso_mass_kg: torch.Tensor
    foot_friction: torch.Tensor
    delayed: torch.Tensor
    """Bool: this env's actions reach the joints one policy step late."""

    def slots(self, m: int) -> dict[str, list]:
        """The first ``m`` envs' draws (one group: every group has the same), for meta.json."""
        return {
            "strength": self.strength[:m].tolist(),
            "torso_mass_kg": self.torso_mass_kg[:m].tolist(),
            "foot_friction": self.foot_friction[:m].tolist(),
            "action_delayed": self.delayed[:m].tolist(),
        }


def draw(draw: DynamicsDraw, crn: CommonRandom) -> Draws:
    """Every env's next draw from the dynamics stream (the same for a slot in every group)."""
    u = crn.uniform(None, STREAM_DYNAMICS, 4)

    def between(lo_hi: tuple[float, float], col: int) -> torch.Tensor:
        lo, hi = lo_hi
        return lo + (hi - lo) * u[:, col]

    return Draws(
        strength=between(draw.strength, 0),
        torso_mass_kg=between(draw.torso_mass_kg, 1),
        foot_friction=between(draw.foot_friction, 2),
        delayed=u[:, 3] < draw.action_delay_share,
    )


class RobotDynamics:
    """The G1's nominal dynamics in one env, and the writes that shift them per env."""

    def __init__(self, env):
        self.robot = env.scene["robot"]
        self.num_envs = env.num_envs
        data = self.robot.data
        torso, _ = self.robot.find_bodies(TORSO)
        if len(torso) != 1:
            raise ValueError(f"expected one {TORSO!r} body in the robot; found {len(torso)}")
        self._torso = torch.tensor(torso, dtype=torch.long, device=self.robot.device)
        self._mass = data.body_mass.torch[:, torso].clone()
        self._inertia = data.body_inertia.torch[:, torso].clone()
        self._stiffness = data.joint_stiffness.torch.clone()
        self._damping = data.joint_damping.torch.clone()
        feet = SceneEntityCfg("robot", body_names=FEET)
        feet.resolve(env.scene)
        self._feet = FootFriction(env, feet)
        self._friction = self._feet.read()
        self.shifted = False

    def apply(self, draws: Draws | None) -> None:
        """Write ``draws`` into the simulation, or the nominal robot for None."""
        if draws is None:
            if self.shifted:
                self._write(torch.ones(self.num_envs), torch.zeros(self.num_envs), None)
                self.shifted = False
            return
        self.shifted = True  # before the writes: a write that fails halfway is still undone
        self._write(draws.strength, draws.torso_mass_kg, draws.foot_friction)

    def _write(self, strength: torch.Tensor, added_kg: torch.Tensor, friction: torch.Tensor | None) -> None:
        ids = torch.arange(self.num_envs, device=self.robot.device)
        s = strength.to(self._stiffness.device)[:, None]
        self.robot.write_joint_stiffness_to_sim_index(stiffness=self._stiffness * s, env_ids=ids)
        self.robot.write_joint_damping_to_sim_index(damping=self._damping * s, env_ids=ids)
        mass = self._mass + added_kg.to(self._mass.device)[:, None]
        self.robot.set_masses_index(masses=mass, body_ids=self._torso, env_ids=ids)
        # inertia scales with the mass, as Isaac Lab's mass randomization assumes (uniform density)
        ratio = (mass / self._mass)[..., None]
        self.robot.set_inertias_index(inertias=self._inertia * ratio, body_ids=self._torso, env_ids=ids)
        self._feet.write(ids, self._friction if friction is None else friction[:, None])


__all__ = ["Draws", "RobotDynamics", "draw"]
