"""``postconv train --device`` carries the device to rsl_rl's learner unless the user set
``agent.device`` in any of Hydra's spellings (the user's choice wins)."""

import pytest
from rich.console import Console

from postconv.cli.commands import with_learner_device


@pytest.mark.parametrize(
    ("passthrough", "device", "expected"),
    [
        (["--num_envs", "8"], "cpu", ["--num_envs", "8", "agent.device=cpu"]),
        (["agent.device=cuda:1"], "cpu", ["agent.device=cuda:1"]),
        (["+agent.device=cuda:1"], "cpu", ["+agent.device=cuda:1"]),
        (["++agent.device=cuda:1"], "cpu", ["++agent.device=cuda:1"]),
        (["agent.device_hint=1"], "cpu", ["agent.device_hint=1", "agent.device=cpu"]),
        (["--num_envs", "8"], None, ["--num_envs", "8"]),
    ],
)
def test_the_learner_follows_device_unless_agent_device_is_given(passthrough, device, expected):
    assert with_learner_device(passthrough, device, Console(quiet=True)) == expected
