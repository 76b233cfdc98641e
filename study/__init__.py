"""The selection-quality study: does the worst case pick the checkpoint that does better elsewhere?

``postconv study [--quick]`` (:mod:`postconv.study.run`) trains stand-and-recover G1 policies on
the CPU, ranks their post-convergence checkpoints with the stage, replays them in held-out
shifted worlds and scores every predictor (:mod:`postconv.study.analysis`).
"""
