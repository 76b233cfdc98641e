"""Common random numbers: the n-th draw of a slot is the same in every group, whenever it happens."""

import pytest
import torch
from conftest import HAS_SIM

if not HAS_SIM:
    pytest.skip("Isaac Lab not installed (bash scripts/setup.sh installs it)", allow_module_level=True)

from postconv.tasks.crn import STREAM_COMMAND, STREAM_PUSH, STREAM_RESET, CommonRandom


def test_a_slot_draws_the_same_sequence_in_every_group_whatever_the_timing():
    crn = CommonRandom(num_envs=6, slots=2, seed=7, device="cpu")  # 3 groups of 2
    # group 0 resets env 0 three times at once; group 2 resets env 4 once per call, between other draws
    together = torch.cat([crn.uniform([0], STREAM_RESET, 4) for _ in range(3)])
    apart = []
    for _ in range(3):
        crn.uniform([1, 3], STREAM_RESET, 4)  # other slots drawing meanwhile change nothing
        crn.uniform([4], STREAM_PUSH, 3)  # nor does another stream of the same env
        apart.append(crn.uniform([4], STREAM_RESET, 4))
    torch.testing.assert_close(torch.cat(apart), together, rtol=0, atol=0)
    # group 1's env 2 starts its own count, so its first draw is group 0's first
    torch.testing.assert_close(crn.uniform([2], STREAM_RESET, 4), together[:1], rtol=0, atol=0)


def test_draws_differ_across_slots_streams_draws_and_seeds():
    def first(seed=0, slot=0, stream=STREAM_RESET, skip=0):
        crn = CommonRandom(num_envs=2, slots=2, seed=seed, device="cpu")
        for _ in range(skip):
            crn.uniform([slot], stream, 5)
        return crn.uniform([slot], stream, 5)

    base = first()
    for other in (first(seed=1), first(slot=1), first(stream=STREAM_COMMAND), first(skip=1)):
        assert not torch.equal(base, other)
    assert torch.unique(base).numel() == 5  # components differ too


def test_restart_replays_the_streams():
    crn = CommonRandom(num_envs=4, slots=4, seed=3, device="cpu")
    before = crn.uniform(None, STREAM_PUSH, 2)
    crn.uniform(None, STREAM_PUSH, 2)
    crn.restart(3)
    torch.testing.assert_close(crn.uniform(None, STREAM_PUSH, 2), before, rtol=0, atol=0)


def test_draws_are_uniform_on_the_unit_interval():
    crn = CommonRandom(num_envs=4096, slots=4096, seed=0, device="cpu")
    u = torch.cat([crn.uniform(None, STREAM_COMMAND, 7) for _ in range(4)]).reshape(-1)
    assert float(u.min()) >= 0.0
    assert float(u.max()) < 1.0
    # 114,688 draws: mean 1/2 and variance 1/12 within a few standard errors, each decile ~10%
    assert abs(float(u.mean()) - 0.5) < 0.005
    assert abs(float(u.var()) - 1 / 12) < 0.002
    deciles = torch.histc(u, bins=10, min=0, max=1) / u.numel()
    assert float((deciles - 0.1).abs().max()) < 0.005


def test_slots_must_divide_the_env_count():
    with pytest.raises(ValueError, match=r"num_envs \(6\) must be a positive multiple of slots \(4\)"):
        CommonRandom(num_envs=6, slots=4, seed=0, device="cpu")
