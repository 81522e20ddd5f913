"""The step consumer's version checks: an event is acted on only when it matches the stored record.

An event older than the record (already handled, or re-sent) is skipped; an event newer
than the record read (a stale read: the store has not caught up) is retried until the
record catches up; an event without a ``record_version`` header (written by an older
producer) is current when the record is still at the event's status.

Events are sent straight to the status topic with ``wf.event_streamer.new_sender``, with
headers copied from an event the engine really published, so the consumer sees them as
it would see a redelivery or a late duplicate.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import pytest

import actorflow as af
from actorflow.protocols import Event, Header
from actorflow.topics import topic
from tests.model import Calls, Order, Status

PROCESS = "started-consumer-1-of-1"
VERSION_LOWER = "event record version lower than latest record version"
STEP_SKIP = "next value specified skip"
MALFORMED = "malformed event"


def _resting_builder(calls: Calls) -> af.Builder[Order, Status]:
    """STARTED -> CHARGED (terminal). The step saves once, then rests its run at STARTED.

    1st call: amount + 1 and save_and_repeat (version 2, still STARTED); later calls skip
    (the run rests at STARTED, version 2) unless the object's amount is 40 or more, which
    moves the run to CHARGED (amount + 1).
    """
    b = af.Builder("versions", Order, Status)

    def charge(run: af.Run[Order, Status]) -> Status:
        n = calls.add("charge", run.run_id)
        if n == 1:
            run.object.amount += 1
            return run.save_and_repeat()
        if run.object.amount >= 40:
            run.object.amount += 1
            return Status.CHARGED
        return run.skip()

    b.add_step(Status.STARTED, charge, Status.CHARGED)
    return b


def _skipped(wf: af.Workflow[Any, Any], reason: str) -> float:
    """The step consumer's skipped-events count for ``reason`` (the process-wide registry)."""
    return wf.metrics.skipped_events.value(wf.name, PROCESS, reason)


def _handled(wf: af.Workflow[Any, Any]) -> float:
    """How many times the step consumer handled an event (each attempt is timed once)."""
    labels = {"workflow_name": wf.name, "process_name": PROCESS}
    return wf.metrics.registry.get_sample_value("workflow_process_latency_seconds_count", labels) or 0.0


def _real_events(wf: af.Workflow[Any, Any], run_id: str, count: int, timeout: float = 10.0) -> list[Event]:
    """The first ``count`` events of ``run_id`` on the STARTED topic, read by a receiver of our own."""
    receiver = wf.event_streamer.new_receiver(topic(wf.name, Status.STARTED), f"reader-{uuid.uuid4().hex[:8]}")
    found: list[Event] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"only {len(found)} of {count} events of run {run_id} were readable within {timeout}s")
            found.extend(e for e in receiver.receive(100, min(remaining, 0.5)) if e.run_id == run_id)
    finally:
        receiver.close()
    return found[:count]


def _send(wf: af.Workflow[Any, Any], run_id: str, headers: Mapping[str, str]) -> None:
    """Send an event for ``run_id`` to the STARTED topic, as a producer outside the engine would."""
    sender = wf.event_streamer.new_sender(topic(wf.name, Status.STARTED))
    try:
        sender.send(run_id, int(Status.STARTED), dict(headers))
        sender.flush()
    finally:
        sender.close()


def _rest_at_version_2(start: Any, calls: Calls, poll_until: Any) -> tuple[af.Workflow[Any, Any], str, dict[str, str]]:
    """A running workflow and a run resting at STARTED, version 2; with its version-2 event's headers."""
    wf = start(_resting_builder(calls))
    skips_before = _skipped(wf, STEP_SKIP)
    run_id = wf.trigger("o-1")
    # The second call's skip is counted once its event is handled: the consumer is idle then.
    poll_until(lambda: _skipped(wf, STEP_SKIP) == skips_before + 1, what="the save and the skip")
    assert calls.count("charge", run_id) == 2
    first, second = _real_events(wf, run_id, 2)
    assert (first.headers[Header.RECORD_VERSION], second.headers[Header.RECORD_VERSION]) == ("1", "2")
    record = wf.record_store.lookup(run_id)
    assert (record.status, record.meta.version, record.run_state) == (Status.STARTED, 2, af.RunState.RUNNING)
    return wf, run_id, dict(second.headers)


def test_an_event_older_than_the_record_is_skipped_and_the_step_is_not_called(start, poll_until):
    """A re-sent event with an older record_version: skipped ("version lower"), the step is not called.

    The run is at the event's status and running, so only the version keeps the step from
    running: the same headers with the current version do run it.
    """
    calls = Calls()
    wf, run_id, headers = _rest_at_version_2(start, calls, poll_until)
    lower_before = _skipped(wf, VERSION_LOWER)

    _send(wf, run_id, {**headers, Header.RECORD_VERSION: "1"})
    poll_until(lambda: _skipped(wf, VERSION_LOWER) == lower_before + 1, what="the old event being skipped")
    assert calls.count("charge", run_id) == 2
    assert wf.record_store.lookup(run_id).meta.version == 2

    # The current version (a redelivery of the last real event) is acted on.
    _send(wf, run_id, headers)
    poll_until(lambda: calls.count("charge", run_id) == 3, what="the step running for the current event")
    assert _skipped(wf, VERSION_LOWER) == lower_before + 1


def test_an_event_newer_than_the_record_waits_until_the_record_catches_up(start, poll_until):
    """A record_version above the stored record (a stale read) is retried, never applied to the stale record.

    The step is not called while the store lags; once the record reaches the event's
    version the step runs once, on the caught-up record. The caught-up record's own event
    then arrives older than the record and is skipped.
    """
    calls = Calls()
    wf, run_id, headers = _rest_at_version_2(start, calls, poll_until)
    lower_before = _skipped(wf, VERSION_LOWER)
    handled_before = _handled(wf)

    _send(wf, run_id, {**headers, Header.RECORD_VERSION: "3"})
    # Three attempts at the event (the first and two retries after err_backoff).
    poll_until(lambda: _handled(wf) >= handled_before + 3, what="the consumer retrying the event")
    assert calls.count("charge", run_id) == 2
    assert wf.record_store.lookup(run_id).meta.version == 2

    # The store catches up: another writer stores version 3 (its object makes the step move on).
    record = wf.record_store.lookup(run_id)
    caught_up = wf.engine.transitions.next(
        record, run_state=af.RunState.RUNNING, data=wf.codec.encode(Order(amount=42))
    )
    wf.record_store.store(caught_up.record)

    run = wf.await_status("o-1", run_id, Status.CHARGED, timeout=10)
    assert run.object.amount == 43  # the step saw the caught-up record
    assert run.meta.version == 4
    # Two events at version 3 (ours and the catch-up's own): the step ran for the first only.
    poll_until(lambda: _skipped(wf, VERSION_LOWER) == lower_before + 1, what="the second version-3 event skipped")
    assert calls.count("charge", run_id) == 3


def test_an_event_without_record_version_is_current_when_the_record_is_at_its_status(start, poll_until):
    """A legacy event (no record_version header) for a run still at the event's status runs the step."""
    calls = Calls()
    wf, run_id, headers = _rest_at_version_2(start, calls, poll_until)
    legacy = {k: v for k, v in headers.items() if k != Header.RECORD_VERSION}
    lower_before = _skipped(wf, VERSION_LOWER)

    _send(wf, run_id, legacy)
    poll_until(lambda: calls.count("charge", run_id) == 3, what="the step running for the legacy event")
    assert _skipped(wf, VERSION_LOWER) == lower_before


def test_an_event_without_record_version_is_skipped_when_the_record_moved_on(start, poll_until):
    """A legacy event for a run no longer at the event's status counts as version 0: skipped, step not called."""
    calls = Calls()
    wf = start(_resting_builder(calls))
    run_id = wf.trigger("o-1", Order(amount=40))
    run = wf.await_status("o-1", run_id, Status.CHARGED, timeout=10)
    assert (run.meta.version, calls.count("charge", run_id)) == (3, 2)
    (first,) = _real_events(wf, run_id, 1)
    legacy = {k: v for k, v in first.headers.items() if k != Header.RECORD_VERSION}
    lower_before = _skipped(wf, VERSION_LOWER)

    _send(wf, run_id, legacy)
    poll_until(lambda: _skipped(wf, VERSION_LOWER) == lower_before + 1, what="the legacy event being skipped")
    assert calls.count("charge", run_id) == 2
    assert wf.record_store.lookup(run_id).meta.version == 3


def test_an_event_with_an_unreadable_record_version_is_skipped_as_malformed(start, poll_until):
    """record_version "two": counted as malformed and skipped; the step is not called, the shard goes on."""
    calls = Calls()
    wf, run_id, headers = _rest_at_version_2(start, calls, poll_until)
    malformed_before = _skipped(wf, MALFORMED)
    labels = {"workflow_name": wf.name, "process_name": PROCESS}
    counted_before = wf.metrics.registry.get_sample_value("actorflow_malformed_events_total", labels) or 0.0

    _send(wf, run_id, {**headers, Header.RECORD_VERSION: "two"})
    _send(wf, run_id, headers)  # behind it: a current event, which does run the step
    poll_until(lambda: calls.count("charge", run_id) == 3, what="the event behind the malformed one")
    assert _skipped(wf, MALFORMED) == malformed_before + 1
    assert wf.metrics.registry.get_sample_value("actorflow_malformed_events_total", labels) == counted_before + 1


def test_an_event_that_stays_ahead_of_its_record_is_skipped_after_the_stale_read_limit(start, poll_until, monkeypatch):
    """A record_version from the future (hostile or corrupt) is retried only for STALE_READ_LIMIT:
    then skipped and counted as malformed, and the run's next event is handled (it is not held for ever)."""
    from actorflow.processes import consumer

    monkeypatch.setattr(consumer, "STALE_READ_LIMIT", 0.3)
    calls = Calls()
    wf, run_id, headers = _rest_at_version_2(start, calls, poll_until)
    ahead = "event ahead of its record"
    labels = {"workflow_name": wf.name, "process_name": PROCESS}
    counted_before = wf.metrics.registry.get_sample_value("actorflow_malformed_events_total", labels) or 0.0
    ahead_before = _skipped(wf, ahead)

    _send(wf, run_id, {**headers, Header.RECORD_VERSION: "9" * 18})
    _send(wf, run_id, headers)  # behind it: a current event, which runs the step once the other is skipped
    poll_until(lambda: calls.count("charge", run_id) == 3, what="the event behind the one from the future")
    assert _skipped(wf, ahead) == ahead_before + 1
    assert wf.metrics.registry.get_sample_value("actorflow_malformed_events_total", labels) == counted_before + 1
    assert wf.record_store.lookup(run_id).meta.version == 2
