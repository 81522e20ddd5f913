"""Counting the events step consumers take straight from their node's writer (engine/handoff.py)."""

from __future__ import annotations

import collections
import threading
from typing import Any

import pytest

from actorflow.processes.consumer import EventConsumer


def count_handed(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """From now on (for the test), how many handed events the consumers of each topic took in."""
    taken = collections.Counter[str]()
    lock = threading.Lock()
    take = EventConsumer._take_handed  # noqa: SLF001 - counting what the consumer takes from the writer

    def counting(self: EventConsumer, *args: Any) -> Any:
        events = take(self, *args)
        with lock:
            taken[self.topic] += len(events)
        return events

    monkeypatch.setattr(EventConsumer, "_take_handed", counting)
    return taken
