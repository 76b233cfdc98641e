"""The ranking: how checkpoints are compared (config), the selection on their samples (select:
worst cases, bootstrap, the pick rule), what it decided (result) and what the other rules pick
(baselines). No simulator and no W&B here."""
