"""Actors from real rsl_rl checkpoints: same actions as rsl_rl's own model, bad files named."""

import argparse
import shutil

import pytest
import torch
from conftest import HAS_SIM

if not HAS_SIM:
    pytest.skip("Isaac Lab not installed (bash scripts/setup.sh installs it)", allow_module_level=True)

from postconv.checkpoints import open_run
from postconv.policy import CheckpointError, load_actor

OBS, ACT = 99, 29
pytestmark = pytest.mark.needs_sim


def test_loaded_actor_gives_the_same_actions_as_rsl_rl(trained_run):
    from rsl_rl.models import MLPModel
    from tensordict import TensorDict

    run = open_run(trained_run)
    checkpoint = run.checkpoints[-1]
    actor = load_actor(checkpoint.path, run.agent_cfg, OBS, ACT)
    obs = torch.randn(16, OBS, generator=torch.Generator().manual_seed(0))
    cfg = run.agent_cfg["actor"]
    reference = MLPModel(
        TensorDict({"policy": obs}, batch_size=[16]),
        {"actor": ["policy"]},
        "actor",
        ACT,
        hidden_dims=cfg["hidden_dims"],
        activation=cfg["activation"],
        obs_normalization=cfg["obs_normalization"],
        distribution_cfg=cfg["distribution_cfg"],
    )
    reference.load_state_dict(torch.load(checkpoint.path, weights_only=True)["actor_state_dict"])
    expected = reference(TensorDict({"policy": obs}, batch_size=[16])).detach()
    torch.testing.assert_close(actor(obs), expected)


def test_corrupt_and_foreign_checkpoints_are_named_with_the_reason(trained_run, tmp_path):
    run = open_run(trained_run)
    good = run.checkpoints[-1].path
    truncated = tmp_path / "model_7.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"model_7\.pt: not a readable torch checkpoint"):
        load_actor(truncated, run.agent_cfg, OBS, ACT)
    with pytest.raises(
        CheckpointError, match=r"maps 99 observations to 29 actions, but the task has 48 and 12"
    ):
        load_actor(good, run.agent_cfg, 48, 12)


def test_checkpoints_that_need_unpickling_are_refused_unless_trusted(trained_run, tmp_path):
    run = open_run(trained_run)
    data = torch.load(run.checkpoints[-1].path, weights_only=True)
    data["infos"] = argparse.Namespace(note="an arbitrary Python object")
    risky = tmp_path / "model_9.pt"
    torch.save(data, risky)
    with pytest.raises(CheckpointError, match=r"model_9\.pt: holds Python objects .* --trust-checkpoints"):
        load_actor(risky, run.agent_cfg, OBS, ACT)
    assert load_actor(risky, run.agent_cfg, OBS, ACT, trust=True).act_dim == ACT


def test_rsl_rl_3_checkpoints_load_with_their_normalizer(trained_run, tmp_path):
    # rsl_rl 3.x kept the actor in model_state_dict as actor.<i> and the normalizer apart
    run = open_run(trained_run)
    actor_state = torch.load(run.checkpoints[-1].path, weights_only=True)["actor_state_dict"]
    old = {f"actor.{k[4:]}": v for k, v in actor_state.items() if k.startswith("mlp.")}
    mean, std = torch.full((1, OBS), 0.5), torch.full((1, OBS), 2.0)
    legacy = tmp_path / "model_3.pt"
    torch.save(
        {"model_state_dict": old, "obs_norm_state_dict": {"_mean": mean, "_std": std}, "iter": 3}, legacy
    )
    shutil.copy(legacy, tmp_path / "copy.pt")
    actor = load_actor(legacy, run.agent_cfg, OBS, ACT)
    modern = load_actor(run.checkpoints[-1].path, run.agent_cfg, OBS, ACT)
    obs = torch.randn(4, OBS, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(actor(obs), modern((obs - 0.5) / (2.0 + 1e-2)))
