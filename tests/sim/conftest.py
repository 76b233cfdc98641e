"""Simulator tests need the Isaac Lab stack; CI requires it (POSTCONV_REQUIRE_SIM=1)."""

import importlib.util
import os
from pathlib import Path

import pytest
from probes import ONE_BY_ONE, TINY_STAGE, assert_ok, copy_run, postconv, train

HAS_SIM = importlib.util.find_spec("isaaclab") is not None


def pytest_configure(config):
    if not HAS_SIM and os.environ.get("POSTCONV_REQUIRE_SIM"):
        raise pytest.UsageError(
            "POSTCONV_REQUIRE_SIM is set but Isaac Lab is not installed: run bash scripts/setup.sh"
        )


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A real run folder: the flat task, 2 PPO iterations on 4 envs, then the automatic
    post-convergence stage on it at a tiny size (~1 min in all)."""
    return train("PostConv-Velocity-Flat-G1", tmp_path_factory.mktemp("train"), stage_args=TINY_STAGE)


@pytest.fixture(scope="session")
def one_by_one(trained_run, tmp_path_factory) -> Path:
    """The trained run evaluated in one process, one checkpoint at a time, uninterrupted: the
    reference other evaluations (grouped, resumed, on Ray) must equal to the bit."""
    run = copy_run(trained_run, tmp_path_factory.mktemp("one_by_one"))
    assert_ok(postconv("evaluate", str(run), *ONE_BY_ONE))
    return run
