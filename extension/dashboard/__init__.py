"""Weights & Biases: the selection and its outcomes logged to a run, and beside the curves in
the training's own run (log); a run read back from W&B to select on another machine (fetch)."""
