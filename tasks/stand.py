"""The stand-and-recover G1 task as plain data, shared by its Isaac Lab config and its C MuJoCo twin.

``PostConv-Stand-G1`` asks the robot to stand still (zero velocity command) while velocity
pushes hit its pelvis every 1 to 3 s, and to recover from them. Its Isaac Lab config
(:class:`postconv.tasks.velocity.G1StandEnvCfg`) and its C MuJoCo twin
(:mod:`postconv.cputrain`) read every weight and threshold from here, so the two cannot
drift apart; ``tests/sim/test_stand_twin.py`` checks them term by term from the same state.

Rewards are Isaac Lab's: each term's value times its weight times the policy step (0.02 s).
"""

from __future__ import annotations

import math

from postconv.tasks.scenarios import PushScenario

REWARD_WEIGHTS: dict[str, float] = {
    "track_lin_vel_xy_exp": 1.0,
    "track_ang_vel_z_exp": 0.5,
    "alive": 1.0,
    "termination_penalty": -200.0,
    "flat_orientation_l2": -2.0,
    "base_height_l2": -20.0,
    "lin_vel_z_l2": -1.0,
    "ang_vel_xy_l2": -0.05,
    "joint_deviation_l1": -0.05,
    "action_rate_l2": -0.01,
    "joint_vel_l2": -1.0e-3,
    "dof_pos_limits": -2.0,
}
"""Reward term -> weight. Staying up earns ~1 per second, a fall costs 200 x 0.02 = 4."""
TRACKING_STD = 0.5
"""Width of the exp(-error^2 / std^2) tracking kernels (m/s, rad/s)."""
BASE_HEIGHT_TARGET = 0.74
"""Pelvis height (m) the height term pulls to: the standing pose settled on its feet."""
MIN_BASE_HEIGHT = 0.5
"""A pelvis below this height (m) ends the episode as a fall."""
MAX_TILT = math.radians(60.0)
"""A pelvis tilted more than this from upright ends the episode as a fall."""
EPISODE_S = 20.0
"""Episode length (s)."""
STAND_PUSH = PushScenario("push_1", (1.0, 3.0), 1.0)
"""Pushes: x and y velocity kicks uniform in +-1 m/s every 1 to 3 s (timers run across resets)."""

__all__ = [
    "BASE_HEIGHT_TARGET",
    "EPISODE_S",
    "MAX_TILT",
    "MIN_BASE_HEIGHT",
    "REWARD_WEIGHTS",
    "STAND_PUSH",
    "TRACKING_STD",
]
