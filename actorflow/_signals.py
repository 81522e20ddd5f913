"""Stopping on Ctrl-C or a termination request, as `actorflow run` and `actorflow demo --serve` do."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Protocol

__all__ = ["StopRequest", "run_until_stopped", "stop_signals"]

# How often a waiting main thread wakes to run a signal handler that is pending.
_HANDLER_PACE = 0.1


class StopRequest(threading.Event):
    """An event whose `wait` wakes now and then, so a pending signal handler gets to run.

    Python runs signal handlers in the main thread, between bytecodes. The kernel may
    deliver a process's signal to any of its threads (it did, reliably, to a node woken by
    SIGCONT and sent SIGTERM at once): the main thread then sleeps on in an untimed wait and
    the handler never runs. A wait in short slices lets it run within ``_HANDLER_PACE``.
    """

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until set (or ``timeout`` seconds), waking every ``_HANDLER_PACE`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            slice_ = _HANDLER_PACE if deadline is None else min(_HANDLER_PACE, deadline - time.monotonic())
            if super().wait(max(slice_, 0.0)) or (deadline is not None and time.monotonic() >= deadline):
                return self.is_set()


@contextlib.contextmanager
def stop_signals(announce: Callable[[str], None] | None = None) -> Iterator[StopRequest]:
    """An event set by SIGINT or SIGTERM while the block runs (the previous handlers are put back).

    Enter it before telling anyone the process is ready, so a signal sent at once is not
    missed. The handlers are set explicitly rather than relying on `KeyboardInterrupt`:
    a process started with SIGINT ignored (a job a script put in the background,
    ``/usr/bin/time``'s child) gets no `KeyboardInterrupt` at all. Main thread only.
    """
    stop = StopRequest()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if announce is not None:
            announce(signal.Signals(signum).name)
        stop.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Node(Protocol):
    def start(self) -> object: ...

    def stop(self) -> object: ...


def run_until_stopped(node: _Node, ready: Callable[[], None], announce: Callable[[str], None] | None = None) -> None:
    """Start ``node``, call ``ready``, and run until SIGINT or SIGTERM; then stop it.

    What a node process's main does (`actorflow run`, the fleet test and benchmark
    nodes). The signals are caught from before the start, so one sent as soon as
    ``ready`` says so is not missed. Main thread only.
    """
    with stop_signals(announce) as stop:
        node.start()
        try:
            ready()
            stop.wait()
        finally:
            node.stop()
