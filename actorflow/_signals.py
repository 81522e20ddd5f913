"""Waiting for Ctrl-C or a termination request, as `actorflow run` and `actorflow demo --serve` do."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

__all__ = ["wait_for_stop_signal"]


def wait_for_stop_signal(announce: Callable[[str], None] | None = None) -> str:
    """Block until SIGINT or SIGTERM arrives; the signal's name (the previous handlers are put back).

    The handlers are set explicitly rather than relying on `KeyboardInterrupt`: a process
    started with SIGINT ignored (a job a script put in the background, a parent that
    ignores it) has no `KeyboardInterrupt` at all, and would never stop on Ctrl-C.
    Call it from the main thread.
    """
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        received.append(name)
        if announce is not None:
            announce(name)
        stop.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return received[0]
