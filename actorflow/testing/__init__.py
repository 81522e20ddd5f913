"""Helpers for testing workflows (and, in `adaptertest`, the adapter conformance suites)."""

from actorflow.clock import FakeClock
from actorflow.testing.helpers import (
    await_timeout_insert,
    new_testing_run,
    require,
    trigger_callback_on,
    wait_for,
)

__all__ = [
    "FakeClock",
    "await_timeout_insert",
    "new_testing_run",
    "require",
    "trigger_callback_on",
    "wait_for",
]
