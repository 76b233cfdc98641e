"""Fixtures of the sim2sim tests (the run folder: :mod:`fake_runs`)."""

import pytest
from fake_runs import make_run


@pytest.fixture
def run_dir(tmp_path):
    return make_run(tmp_path)
