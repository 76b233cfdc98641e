"""Isaac Lab 3.0 tasks for the 29-DoF Unitree G1: velocity tracking (flat, under pushes), standing under pushes.

Importing this package registers the tasks with gymnasium (no Isaac Lab import happens
until a task is made). Isaac Lab's ``isaaclab train`` imports it through the
``isaaclab.tasks`` entry point declared in pyproject.toml:

    isaaclab train --task PostConv-Velocity-Flat-G1 --num_envs 4096
"""

FLAT_TASK = "PostConv-Velocity-Flat-G1"
DISTURBED_TASK = "PostConv-Velocity-Disturbed-G1"
STAND_TASK = "PostConv-Stand-G1"

try:
    import gymnasium as gym
except ImportError:  # a selection-only install: no simulator, nothing to register
    gym = None

for _task, _env_cfg, _agent_cfg in (
    (FLAT_TASK, "G1FlatEnvCfg", "G1FlatPPORunnerCfg"),
    (DISTURBED_TASK, "G1DisturbedEnvCfg", "G1DisturbedPPORunnerCfg"),
    (STAND_TASK, "G1StandEnvCfg", "G1StandPPORunnerCfg"),
):
    if gym is not None and _task not in gym.registry:
        gym.register(
            id=_task,
            entry_point="isaaclab.envs:ManagerBasedRLEnv",
            disable_env_checker=True,
            kwargs={
                "env_cfg_entry_point": f"postconv.tasks.velocity:{_env_cfg}",
                "rsl_rl_cfg_entry_point": f"postconv.tasks.agents:{_agent_cfg}",
                "default_agent": "rsl_rl",
            },
        )
