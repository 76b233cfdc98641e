"""Ctrl-C is never lost, even when it lands in a destructor (where Python ignores exceptions)."""

import os
import signal
import time

import pytest

from postconv import interrupt


@pytest.fixture
def installed():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    interrupt.install()
    yield
    signal.signal(signal.SIGINT, before[0])
    signal.signal(signal.SIGTERM, before[1])
    interrupt._requested.clear()


class _FreedOnCtrlC:
    """Like a Warp array: work in ``__del__``, where an exception is printed and dropped."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs here, inside __del__


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowing, on purpose
def test_a_ctrl_c_swallowed_by_a_destructor_is_raised_at_the_next_check(installed):
    interrupt.check()  # nothing requested yet
    freed = _FreedOnCtrlC()
    del freed  # the KeyboardInterrupt is raised and ignored inside __del__
    with pytest.raises(KeyboardInterrupt):
        interrupt.check()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_both_interrupt(installed, signum):
    def kill_and_wait():
        os.kill(os.getpid(), signum)
        time.sleep(1)

    with pytest.raises(KeyboardInterrupt):
        kill_and_wait()
    with pytest.raises(KeyboardInterrupt):
        interrupt.check()
