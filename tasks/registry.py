"""Registers the G1 tasks with gymnasium (no Isaac Lab import happens until a task is made).

Isaac Lab's ``isaaclab train`` and ``isaaclab_tasks.utils.resolve_task_config`` find the tasks
through the ``isaaclab.tasks`` entry point (pyproject.toml), which imports this module; code
that looks a task up in gymnasium's registry itself imports it first.
"""

from postconv.tasks import DISTURBED_TASK, FLAT_TASK, STAND_TASK

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
