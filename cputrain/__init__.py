"""Train G1 policies on a CPU: the stand task's C MuJoCo twin under rsl_rl PPO.

Isaac Lab on a CPU steps ~150 env-steps/s, far too slow to train a G1; the twin steps the
same task in plain C MuJoCo on every core (~3,600 env-steps/s with learning on 2 cores) and
leaves an Isaac Lab run folder that the post-convergence stage evaluates natively.
"""
