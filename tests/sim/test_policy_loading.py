"""Actors from real rsl_rl checkpoints: same actions as rsl_rl's own model, bad files named."""

import argparse
import re

import pytest
import torch
from conftest import HAS_SIM

if not HAS_SIM:
    pytest.skip("Isaac Lab not installed (bash scripts/setup.sh installs it)", allow_module_level=True)

from postconv.evaluation.policy import CheckpointError, load_actor
from postconv.storage.checkpoints import open_run

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


def _rsl_rl_model(obs_normalization: bool):
    """rsl_rl 5's own actor model, with its normalizer given non-trivial statistics."""
    from rsl_rl.models import MLPModel
    from tensordict import TensorDict

    torch.manual_seed(0)
    obs = TensorDict({"policy": torch.randn(8, OBS)}, batch_size=[8])
    model = MLPModel(
        obs, {"actor": ["policy"]}, "actor", ACT, hidden_dims=[32, 16], obs_normalization=obs_normalization
    )
    if obs_normalization:
        model.obs_normalizer._mean.copy_(torch.randn(1, OBS))
        model.obs_normalizer._std.copy_(torch.rand(1, OBS) + 0.5)
    return model, obs


def test_normalized_actor_matches_rsl_rl(tmp_path):
    model, obs = _rsl_rl_model(obs_normalization=True)
    path = tmp_path / "model_4.pt"
    torch.save({"actor_state_dict": model.state_dict(), "iter": 4}, path)
    cfg = {"actor": {"activation": "elu", "obs_normalization": True}}
    actor = load_actor(path, cfg, OBS, ACT)
    torch.testing.assert_close(actor(obs["policy"]), model(obs).detach())


@pytest.mark.parametrize("version", ["3.x", "2.x"])
def test_older_rsl_rl_layouts_load_with_their_normalizer(tmp_path, version):
    model, obs = _rsl_rl_model(obs_normalization=True)
    state = model.state_dict()
    old = {f"actor.{k[4:]}": v for k, v in state.items() if k.startswith("mlp.")}
    norm = {"_mean": state["obs_normalizer._mean"], "_std": state["obs_normalizer._std"]}
    if version == "3.x":  # actor_obs_normalizer.* inside model_state_dict
        data = {"model_state_dict": {**old, **{f"actor_obs_normalizer.{k}": v for k, v in norm.items()}}}
    else:  # a state dict of its own
        data = {"model_state_dict": old, "obs_norm_state_dict": norm}
    path = tmp_path / "model_2.pt"
    torch.save(data, path)
    actor = load_actor(path, {"policy": {"activation": "elu"}}, OBS, ACT)
    torch.testing.assert_close(actor(obs["policy"]), model(obs).detach())


def test_missing_normalizer_statistics_are_an_error_not_wrong_actions(tmp_path):
    model, _ = _rsl_rl_model(obs_normalization=False)
    path = tmp_path / "model_5.pt"
    torch.save({"actor_state_dict": model.state_dict()}, path)
    with pytest.raises(CheckpointError, match=r"normalized observations .* holds no normalizer statistics"):
        load_actor(path, {"actor": {"obs_normalization": True}}, OBS, ACT)


def test_a_git_lfs_pointer_is_named_as_unreadable(tmp_path):
    pointer = tmp_path / "model_6.pt"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1866199\n")
    with pytest.raises(CheckpointError, match=r"model_6\.pt: not a readable torch checkpoint"):
        load_actor(pointer, {}, OBS, ACT, trust=True)


def _short(key):
    return lambda s: s.__setitem__(
        key, s[key].reshape(-1)[:-3].reshape(1, -1) if "normalizer" in key else s[key][:-1]
    )


def _set(key, index, value):
    def edit(state):
        state[key] = state[key].clone()
        state[key][index] = value

    return edit


def _overflowing(state):
    # every weight and bias finite, but the second layer sums 32 values near float32's largest
    state["mlp.0.bias"] = torch.full_like(state["mlp.0.bias"], 3e38)
    state["mlp.2.weight"] = torch.ones_like(state["mlp.2.weight"])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_short("mlp.0.bias"), "actor layer mlp.0 has weight (32, 99), bias (31,), not a (out, in) weight"),
        (
            _short("obs_normalizer._mean"),
            "observation normalizer holds 96 means and 99 deviations for an actor of 99",
        ),
        (
            _set("mlp.2.weight", (0, 0), float("nan")),
            "NaN or inf in its weights (mlp.2.weight): the training diverged",
        ),
        (_set("obs_normalizer._mean", (0, 5), float("inf")), "NaN or inf in its weights (obs_mean)"),
        (_overflowing, "its action at the zero observation is not finite"),
    ],
)
def test_a_damaged_or_diverged_actor_is_refused_by_name_before_any_rollout(tmp_path, damage, message):
    model, _ = _rsl_rl_model(obs_normalization=True)
    state = dict(model.state_dict())
    damage(state)
    path = tmp_path / "model_8.pt"
    torch.save({"actor_state_dict": state}, path)
    with pytest.raises(CheckpointError, match=re.escape("model_8.pt: ") + ".*" + re.escape(message)):
        load_actor(path, {"actor": {"activation": "elu", "obs_normalization": True}}, OBS, ACT)
