"""Stopping on a signal: the wait ends even when the kernel hands the signal to another thread."""

from __future__ import annotations

import linecache
import signal
import sys
import threading
from types import FrameType

import pytest

from actorflow._signals import stop_signals

pytestmark = pytest.mark.timeout(60)


def _blocked_in_acquire(frame: FrameType) -> bool:
    """Whether ``frame`` is at the lock acquire of a `threading.Condition.wait`."""
    if frame.f_code is not threading.Condition.wait.__code__:
        return False
    return "acquire(" in linecache.getline(frame.f_code.co_filename, frame.f_lineno)


def test_a_signal_caught_by_another_thread_still_ends_the_wait():
    """SIGTERM delivered to a worker thread: the main thread's wait returns set, not at its timeout."""
    main = threading.get_ident()

    def signal_once_main_sleeps() -> None:
        # Only a signal sent while the main thread is blocked in the lock shows the fault: wait
        # until its frame is the lock's acquire, then give it a moment to get into the call
        # (were it not blocked yet, the test would pass either way: it cannot fail falsely).
        while not _blocked_in_acquire(sys._current_frames()[main]):  # noqa: SLF001 - the one way to see it
            threading.Event().wait(0.001)
        threading.Event().wait(0.05)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    with stop_signals() as stop:
        worker = threading.Thread(target=signal_once_main_sleeps)
        worker.start()
        # An untimed threading.Event.wait would sleep on here: the handler runs only in the
        # main thread, and nothing wakes it. A wait that times out first reports False.
        assert stop.wait(timeout=30), "the signal's handler did not run while the main thread waited"
        worker.join()


def test_the_previous_handlers_are_put_back():
    """Leaving the block restores what SIGINT and SIGTERM did before."""
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with stop_signals() as stop:
        assert not stop.wait(timeout=0.01)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
