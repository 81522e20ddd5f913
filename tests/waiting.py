"""Waiting on a condition in a test, bounded, instead of sleeping a guessed time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

__all__ = ["HANG", "eventually"]

V = TypeVar("V")

HANG = 15.0
"""Seconds a test waits for what must come before it calls a hang: long enough for a loaded
machine (four test workers on two cores), and free when the thing comes."""


def eventually(fn: Callable[[], V], timeout: float = HANG, what: str = "the condition") -> V:
    """The first truthy ``fn()``, looked at every 5 ms; fails the test after ``timeout`` seconds.

    The timeout only catches a hang: it costs nothing when the condition holds, and must
    outlast a node that starts slowly on a loaded machine (the suite runs on every core).
    """
    deadline = time.monotonic() + timeout
    tick = threading.Event()  # never set: a bounded wait between looks
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"{what} did not hold within {timeout}s")
        tick.wait(0.005)
