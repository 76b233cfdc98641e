"""A synthetic sample set that shows what the selection does, until real rollouts exist.

The samples are generated, not simulated: each "checkpoint" has per-step rewards from 64
episodes of 40 steps with an episode-level effect (steps of one episode are correlated)
and a chance per episode of a fall that costs the rest of the episode. The checkpoints
trade a higher base reward against more falls, so the plain mean and the worst case can
disagree about the best one. The checkpoint names say the data is synthetic.
"""

from __future__ import annotations

import numpy as np

from postconv.storage.samples_file import SampleSet

EPISODES = 64
STEPS_PER_EPISODE = 40


def demo_samples(seed: int = 0) -> SampleSet:
    rng = np.random.default_rng(seed)
    #             base reward, fall probability per episode
    profiles = [(0.80, 0.02), (0.86, 0.04), (0.90, 0.10), (0.93, 0.18), (0.84, 0.01), (0.95, 0.30)]
    groups = np.repeat(np.arange(EPISODES), STEPS_PER_EPISODE)
    psi = []
    for base, p_fall in profiles:
        episode_effect = rng.normal(0.0, 0.05, EPISODES)[groups]
        step_noise = rng.normal(0.0, 0.08, groups.size)
        reward = base + episode_effect + step_noise
        falls = rng.random(EPISODES) < p_fall
        fall_step = rng.integers(0, STEPS_PER_EPISODE, EPISODES)
        step_in_episode = np.tile(np.arange(STEPS_PER_EPISODE), EPISODES)
        fallen = falls[groups] & (step_in_episode >= fall_step[groups])
        reward[fallen] = rng.normal(-1.0, 0.2, fallen.sum())
        psi.append(reward)
    names = tuple(f"synth_{1000 * (i + 1)}" for i in range(len(profiles)))
    return SampleSet(psi=np.stack(psi), names=names, groups=groups)
