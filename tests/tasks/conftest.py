"""Simulator tests need the Isaac Lab stack; CI requires it (POSTCONV_REQUIRE_SIM=1)."""

import importlib.util
import os

import pytest

HAS_SIM = importlib.util.find_spec("isaaclab") is not None


def pytest_configure(config):
    if not HAS_SIM and os.environ.get("POSTCONV_REQUIRE_SIM"):
        raise pytest.UsageError(
            "POSTCONV_REQUIRE_SIM is set but Isaac Lab is not installed: run bash scripts/setup.sh"
        )
