"""Weights & Biases: the selection, its outcomes and the training curve logged to a run (log),
and a run read back from W&B to select on another machine (fetch)."""
