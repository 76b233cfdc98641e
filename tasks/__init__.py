"""Isaac Lab 3.0 tasks for the 29-DoF Unitree G1: velocity tracking (flat, under pushes), standing under pushes.

This package is plain data (task ids and kinds); :mod:`postconv.tasks.registry` registers the
tasks with gymnasium, and Isaac Lab's ``isaaclab train`` imports it through the
``isaaclab.tasks`` entry point declared in pyproject.toml:

    isaaclab train --task PostConv-Velocity-Flat-G1 --num_envs 4096
"""

FLAT_TASK = "PostConv-Velocity-Flat-G1"
DISTURBED_TASK = "PostConv-Velocity-Disturbed-G1"
STAND_TASK = "PostConv-Stand-G1"
TASK_KINDS: dict[str, str] = {FLAT_TASK: "flat", DISTURBED_TASK: "disturbed", STAND_TASK: "stand"}
"""Task id -> the kind ``make_eval_cfg`` takes."""
