"""The ``+dyn`` one-step action delay, on its own (no simulator): what each env receives."""

import torch

from postconv.evaluation.delay import ActionDelay


def _actions(t: int, n: int = 4, a: int = 3) -> torch.Tensor:
    """A distinct action per step and env: 100 t + 10 env + joint."""
    return 100.0 * t + 10.0 * torch.arange(n)[:, None] + torch.arange(a)[None, :] + 1.0


def test_delayed_envs_receive_the_step_befores_action_and_the_others_their_own():
    delayed = torch.tensor([True, False, True, False])
    delay = ActionDelay(delayed)
    no_reset = torch.zeros(4, dtype=torch.bool)
    for t in range(5):
        sent = delay.send(_actions(t))
        torch.testing.assert_close(sent[~delayed], _actions(t)[~delayed])
        expected = torch.zeros(2, 3) if t == 0 else _actions(t - 1)[delayed]
        torch.testing.assert_close(sent[delayed], expected)
        delay.stepped(_actions(t), no_reset)


def test_a_reset_leaves_the_delayed_env_nothing_to_send_but_zeros():
    delay = ActionDelay(torch.tensor([True, True]))
    delay.send(_actions(0, n=2))
    delay.stepped(_actions(0, n=2), torch.tensor([True, False]))  # env 0 fell and respawned
    sent = delay.send(_actions(1, n=2))
    torch.testing.assert_close(sent[0], torch.zeros(3))
    torch.testing.assert_close(sent[1], _actions(0, n=2)[1])


def test_what_is_remembered_is_the_policys_choice_not_what_was_sent():
    # a delayed env sent zeros at t = 0; at t = 1 it must get the policy's t = 0 action
    delay = ActionDelay(torch.tensor([True]))
    first = _actions(0, n=1)
    assert torch.equal(delay.send(first), torch.zeros_like(first))
    delay.stepped(first, torch.tensor([False]))
    assert torch.equal(delay.send(_actions(1, n=1)), first)
