"""A check the SQL streamers share: stopping a streamer ends its running retention clean-up."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any


def assert_stopping_ends_a_running_cleanup(streamer: Any, stop: Callable[[], None]) -> None:
    """Start a clean-up whose batches never run short, call ``stop``: the thread ends after one batch."""
    started, release = threading.Event(), threading.Event()
    batches: list[int] = []

    def slow_batch(cutoff: datetime, limit: int) -> int:
        started.set()
        release.wait(5)
        batches.append(limit)
        return limit  # a full batch: it would go on forever unless told to stop

    streamer.retention_job.delete_batch = slow_batch
    try:
        streamer.retention_job.poke()
        assert started.wait(5), "the clean-up did not start"
        threading.Timer(0.05, release.set).start()
    finally:
        stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("actorflow-retention")]
    assert len(batches) == 1
