"""Restart logging by outage: the first exit in full, repeats counted, one line on recovery."""

from __future__ import annotations

import logging

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRoleScheduler
from tests.model import Item, Stage, two_steps
from tests.runtime.test_restarts import FAST, FlakyStore
from tests.waiting import eventually

RELAY = "quiet/outbox-consumer"


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def test_an_outage_logs_its_first_exit_and_its_recovery_only(caplog: pytest.LogCaptureFixture) -> None:
    """A process crashing again and again (a store that keeps failing) logs one exit line with the
    traceback, none of pykka's own crash records, and one recovery line with the restart count."""
    store = FlakyStore()
    wf = two_steps("quiet").build(MemoryEventStreamer(), store, MemoryRoleScheduler())
    with caplog.at_level(logging.INFO), af.Supervisor([wf], restart=FAST):
        store.broken.set()
        eventually(lambda: store.failures >= 8, timeout=10, what="eight failures of the outage")
        store.broken.clear()
        recovered = eventually(lambda: _lines(caplog, "recovered after exiting"), timeout=10, what="the recovery line")
        run_id = wf.trigger("x", Item("x"))
        assert wf.await_status("x", run_id, Stage.DONE, timeout=5).object.steps == 2
    exits = [r for r in caplog.records if " exited (" in r.getMessage()]
    assert len(exits) == 1, [r.getMessage() for r in exits]
    assert RELAY in exits[0].getMessage() and "database went away" in exits[0].getMessage()
    assert exits[0].exc_info is not None  # the first failure in full
    assert _lines(caplog, "Unhandled exception in ProcessActor") == []
    assert len(recovered) == 1, recovered
    restarts = int(recovered[0].split(": ")[1].split(" ")[0])
    assert restarts >= 8, recovered[0]
    assert len(_lines(caplog, "marked failed")) <= 1
    assert len(caplog.records) <= 5, [r.getMessage() for r in caplog.records]
