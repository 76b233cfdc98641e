"""Simulator tests need the Isaac Lab stack; CI requires it (POSTCONV_REQUIRE_SIM=1)."""

import importlib.util
import os

import pytest

HAS_SIM = importlib.util.find_spec("isaaclab") is not None


def pytest_collection_modifyitems(config, items):
    if HAS_SIM:
        return
    if os.environ.get("POSTCONV_REQUIRE_SIM"):
        raise pytest.UsageError(
            "POSTCONV_REQUIRE_SIM is set but Isaac Lab is not installed: run bash scripts/setup.sh"
        )
    skip = pytest.mark.skip(reason="Isaac Lab not installed (bash scripts/setup.sh installs it)")
    for item in items:
        if "needs_sim" in item.keywords:
            item.add_marker(skip)
