"""Stopping on Ctrl-C or a termination request, as `actorflow run` and `actorflow demo --serve` do."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

__all__ = ["stop_signals"]


@contextlib.contextmanager
def stop_signals(announce: Callable[[str], None] | None = None) -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while the block runs (the previous handlers are put back).

    Enter it before telling anyone the process is ready, so a signal sent at once is not
    missed. The handlers are set explicitly rather than relying on `KeyboardInterrupt`:
    a process started with SIGINT ignored (a job a script put in the background,
    ``/usr/bin/time``'s child) gets no `KeyboardInterrupt` at all. Main thread only.
    """
    stop = threading.Event()

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
