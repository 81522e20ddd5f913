"""Timeouts: set when a run reaches a status, fired once the clock passes them, for their own run."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

import actorflow as af
from actorflow.protocols import TimeoutRecord
from actorflow.testing import await_timeout_insert
from tests.model import T0, Calls, Order, Status

HALF_HOUR = timedelta(minutes=30)


@pytest.fixture
def expiring():
    """``expiring(timer, calls, fn, options)``: STARTED -> AWAITING, which times out to EXPIRED or is APPROVED by callback."""

    def _builder(
        timer: Callable[[af.Run[Order, Status], datetime], datetime | None] | None = None,
        calls: Calls | None = None,
        fn: Callable[[af.Run[Order, Status], datetime], Status] | None = None,
        options: af.Options | None = None,
    ) -> af.Builder[Order, Status]:
        log = calls if calls is not None else Calls()
        b = af.Builder("expiring", Order, Status)
        b.add_step(Status.STARTED, lambda run: Status.AWAITING, Status.AWAITING)

        def expire(run: af.Run[Order, Status], now: datetime) -> Status:
            log.add("expire", run.run_id)
            run.object.notes.append(f"expired at {now.isoformat()}")
            return Status.EXPIRED

        spec = b.add_timeout(Status.AWAITING, timer or af.duration_timer(HALF_HOUR), fn or expire, Status.EXPIRED)
        if options is not None:
            spec.with_options(options)
        b.add_callback(Status.AWAITING, lambda run, payload: Status.APPROVED, Status.APPROVED)
        return b

    return _builder


def _timeouts_of(wf: af.Workflow[Any, Any], run_id: str) -> list[TimeoutRecord]:
    return [t for t in wf.timeout_store.list(wf.name) if t.run_id == run_id]


def test_a_duration_timer_fires_once_the_clock_passes_it(start, clock, expiring):
    """duration_timer(30m): the timeout function runs after the clock moves 30 minutes on."""
    wf = start(expiring())
    run_id = wf.trigger("e-1")
    await_timeout_insert(wf, "e-1", run_id, Status.AWAITING)
    clock.advance(HALF_HOUR)
    run = wf.await_status("e-1", run_id, Status.EXPIRED, timeout=5)
    assert run.object.notes == [f"expired at {(T0 + HALF_HOUR).isoformat()}"]
    assert run.run_state is af.RunState.COMPLETED


def test_await_timeout_insert_returns_the_stored_timeout(start, expiring):
    """The helper returns the timeout of (status, foreign id, run id), expiring 30 minutes on."""
    wf = start(expiring())
    run_id = wf.trigger("e-1")
    timeout = await_timeout_insert(wf, "e-1", run_id, Status.AWAITING)
    assert (timeout.workflow_name, timeout.foreign_id, timeout.run_id) == ("expiring", "e-1", run_id)
    assert timeout.status == Status.AWAITING
    assert timeout.expire_at == T0 + HALF_HOUR
    assert not timeout.completed


def test_a_timeout_does_not_fire_before_it_expires(start, clock, expiring):
    """A minute short of the expiry the run is still waiting."""
    calls = Calls()
    wf = start(expiring(calls=calls))
    run_id = wf.trigger("e-1")
    await_timeout_insert(wf, "e-1", run_id, Status.AWAITING)
    clock.advance(HALF_HOUR - timedelta(minutes=1))
    with pytest.raises(af.AwaitTimeout):
        wf.await_status("e-1", run_id, Status.EXPIRED, timeout=0.3)
    assert calls.count("expire") == 0


def test_a_time_timer_fires_at_its_time(start, clock, expiring):
    """time_timer(t) expires at t whenever the run got there."""
    wf = start(expiring(af.time_timer(T0 + timedelta(hours=2))))
    run_id = wf.trigger("e-1")
    assert await_timeout_insert(wf, "e-1", run_id, Status.AWAITING).expire_at == T0 + timedelta(hours=2)
    clock.set(T0 + timedelta(hours=2))
    wf.await_status("e-1", run_id, Status.EXPIRED, timeout=5)


def test_a_timer_returning_none_sets_no_timeout(start, expiring):
    """A custom timer that returns None for a run stores no timeout for that run."""

    def only_vip(run: af.Run[Order, Status], now: datetime) -> datetime | None:
        return now + HALF_HOUR if run.foreign_id.startswith("vip") else None

    wf = start(expiring(only_vip))
    plain = wf.trigger("plain")
    vip = wf.trigger("vip-1")
    # The inserter handles runs in order: once the second has its timeout, the first was seen.
    await_timeout_insert(wf, "vip-1", vip, Status.AWAITING)
    assert _timeouts_of(wf, plain) == []


def test_a_timeout_fires_for_its_own_run_not_the_latest_of_its_foreign_id(start, clock, expiring, poll_until):
    """An old run's expired timeout never fires on a newer run of the same foreign id."""
    calls = Calls()
    wf = start(expiring(calls=calls))
    old = wf.trigger("e-1")
    await_timeout_insert(wf, "e-1", old, Status.AWAITING)  # expires at T0 + 30m
    clock.advance(timedelta(minutes=20))
    wf.cancel(old, "superseded")
    new = wf.trigger("e-1")
    await_timeout_insert(wf, "e-1", new, Status.AWAITING)  # expires at T0 + 50m
    clock.advance(timedelta(minutes=10))  # the old timeout has expired, the new one has not
    poll_until(lambda: not _timeouts_of(wf, old), what="the old run's timeout being cancelled")
    record = wf.record_store.lookup(new)
    assert (record.status, record.meta.version) == (Status.AWAITING, 2)
    clock.advance(timedelta(minutes=20))
    wf.await_status("e-1", new, Status.EXPIRED, timeout=5)
    assert calls.per_run("expire") == {new: 1}


def test_a_timeout_of_a_run_that_moved_on_is_cancelled(start, clock, expiring, poll_until):
    """A run that left the status before its timeout expired is not timed out; its timeout is dropped."""
    calls = Calls()
    wf = start(expiring(calls=calls))
    run_id = wf.trigger("e-1")
    await_timeout_insert(wf, "e-1", run_id, Status.AWAITING)
    wf.callback("e-1", Status.AWAITING, b"{}")
    clock.advance(HALF_HOUR)
    poll_until(lambda: not _timeouts_of(wf, run_id), what="the timeout being cancelled")
    assert calls.count("expire") == 0
    assert wf.record_store.lookup(run_id).status == Status.APPROVED


def test_a_skipping_timeout_function_completes_its_timeout(start, clock, expiring, poll_until):
    """A timeout function that returns run.skip() is not called again on later polls."""
    calls = Calls()

    def timer(run: af.Run[Order, Status], now: datetime) -> datetime:
        return now + (HALF_HOUR if run.foreign_id == "skipper" else 2 * HALF_HOUR)

    def expire(run: af.Run[Order, Status], now: datetime) -> Status:
        calls.add("expire", run.run_id)
        return run.skip() if run.foreign_id == "skipper" else Status.EXPIRED

    wf = start(expiring(timer, fn=expire))
    skipper = wf.trigger("skipper")
    other = wf.trigger("other")
    await_timeout_insert(wf, "skipper", skipper, Status.AWAITING)
    await_timeout_insert(wf, "other", other, Status.AWAITING)
    clock.advance(HALF_HOUR)
    poll_until(lambda: not _timeouts_of(wf, skipper), what="the skipped timeout being completed")
    # A later poll, which fires the other run's timeout, must not call the skipper's again.
    clock.advance(HALF_HOUR)
    wf.await_status("other", other, Status.EXPIRED, timeout=5)
    assert calls.per_run("expire") == {skipper: 1, other: 1}
    assert wf.record_store.lookup(skipper).status == Status.AWAITING


def test_the_timeout_of_a_paused_run_waits_for_the_resume(start, clock, expiring):
    """A paused run's expired timeout is left alone; once resumed, it fires."""
    calls = Calls()
    wf = start(expiring(calls=calls), pause_retry=None)
    paused = wf.trigger("paused")
    other = wf.trigger("other")
    await_timeout_insert(wf, "paused", paused, Status.AWAITING)
    await_timeout_insert(wf, "other", other, Status.AWAITING)
    wf.pause(paused, "hold on")
    clock.advance(HALF_HOUR)
    # Both expire in the same poll; the other run's firing shows the poll happened.
    wf.await_status("other", other, Status.EXPIRED, timeout=5)
    assert calls.count("expire", paused) == 0
    assert wf.record_store.lookup(paused).run_state is af.RunState.PAUSED
    wf.resume(paused)
    wf.await_status("paused", paused, Status.EXPIRED, timeout=5)
    assert calls.count("expire", paused) == 1


def test_a_raising_timeout_function_pauses_the_run_at_the_error_limit(start, clock, expiring, poll_until, run_state_of):
    """A timeout function that raises is a step error: tried each poll, the run paused at the limit."""
    calls = Calls()

    def expire(run: af.Run[Order, Status], now: datetime) -> Status:
        calls.add("expire", run.run_id)
        msg = "cannot expire"
        raise RuntimeError(msg)

    wf = start(expiring(fn=expire, options=af.Options(pause_after_err_count=2)), pause_retry=None)
    run_id = wf.trigger("e-1")
    await_timeout_insert(wf, "e-1", run_id, Status.AWAITING)
    clock.advance(HALF_HOUR)
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.PAUSED, what="the auto-pause")
    record = wf.record_store.lookup(run_id)
    assert record.status == Status.AWAITING
    assert record.meta.run_state_reason == "max error retry threshold hit - automatically paused"
    assert calls.count("expire", run_id) == 2


def test_a_raising_timeout_function_is_retried_after_err_backoff(start, clock, expiring, poll_until):
    """As a step: after a timeout function raises, the poller waits ``err_backoff`` before trying again."""
    backoff = 0.3
    tries: list[float] = []

    def expire(run: af.Run[Order, Status], now: datetime) -> Status:
        tries.append(time.monotonic())
        if len(tries) < 3:
            msg = "not yet"
            raise RuntimeError(msg)
        return Status.EXPIRED

    options = af.Options(err_backoff=backoff, polling_frequency=0.02)
    wf = start(expiring(fn=expire, options=options), pause_retry=None)
    run_id = wf.trigger("e-1")
    await_timeout_insert(wf, "e-1", run_id, Status.AWAITING)
    clock.advance(HALF_HOUR)
    wf.await_status("e-1", run_id, Status.EXPIRED, timeout=10)
    gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
    assert len(tries) == 3
    assert all(gap >= backoff * 0.9 for gap in gaps), f"tried again before err_backoff: {gaps}"


def test_a_timeout_result_outside_its_destinations_stores_nothing(start, clock, expiring, poll_until, run_state_of):
    """A timeout function returning a status it may not go to is a step error: nothing is stored."""

    def expire(run: af.Run[Order, Status], now: datetime) -> Status:
        return Status.DONE

    wf = start(expiring(fn=expire, options=af.Options(pause_after_err_count=1)), pause_retry=None)
    run_id = wf.trigger("e-1")
    await_timeout_insert(wf, "e-1", run_id, Status.AWAITING)
    clock.advance(HALF_HOUR)
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.PAUSED, what="the auto-pause")
    record = wf.record_store.lookup(run_id)
    assert (record.status, record.meta.version) == (Status.AWAITING, 3)  # trigger, step, pause


def test_build_without_a_timeout_store_raises(stack, expiring):
    """A workflow with timeouts cannot be built without a timeout store."""
    with pytest.raises(af.BuildError, match="timeout store"):
        stack.build(expiring(), timeout_store=None)


POLLER = "awaiting-timeout-consumer"  # the timeout poller of Status.AWAITING


def _skipped(wf: af.Workflow[Any, Any], reason: str) -> float:
    """The AWAITING timeout poller's skipped-events count for ``reason`` (the process-wide registry)."""
    return wf.metrics.skipped_events.value(wf.name, POLLER, reason)


def _restarts(wf: af.Workflow[Any, Any]) -> float:
    """How many times the AWAITING timeout poller's actor was restarted after a crash."""
    labels = {"workflow_name": wf.name, "process_name": POLLER}
    return wf.metrics.registry.get_sample_value("actorflow_actor_restarts_total", labels) or 0.0


def test_only_the_expired_timeout_runs_its_function(start, clock, poll_until):
    """Two timeouts on one status: the one that expires runs its own function, not the first added."""
    calls = Calls()
    b = af.Builder("two-timers", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.AWAITING, Status.AWAITING)

    def late(run: af.Run[Order, Status], now: datetime) -> Status:
        calls.add("late", run.run_id)
        return Status.REJECTED

    def early(run: af.Run[Order, Status], now: datetime) -> Status:
        calls.add("early", run.run_id)
        return Status.EXPIRED

    b.add_timeout(Status.AWAITING, af.duration_timer(2 * HALF_HOUR), late, Status.REJECTED)
    b.add_timeout(Status.AWAITING, af.duration_timer(HALF_HOUR), early, Status.EXPIRED)
    wf = start(b)
    run_id = wf.trigger("t-1")
    timeouts = poll_until(lambda: len(found := _timeouts_of(wf, run_id)) == 2 and found, what="both timeouts")
    assert [(t.index, t.record_version) for t in timeouts] == [(0, 2), (1, 2)]
    clock.advance(HALF_HOUR)
    wf.await_status("t-1", run_id, Status.EXPIRED, timeout=5)
    assert calls.per_run("early") == {run_id: 1}
    assert calls.count("late") == 0


def test_a_timeout_of_an_earlier_visit_does_not_fire_on_a_later_one(start, clock, poll_until):
    """A run that left the status and came back keeps only the new visit's timeout; the old one is skipped."""
    calls = Calls()
    b = af.Builder("revisits", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.AWAITING, Status.AWAITING)
    b.add_callback(Status.AWAITING, lambda run, payload: Status.APPROVED, Status.APPROVED)
    b.add_step(Status.APPROVED, lambda run: Status.AWAITING, Status.AWAITING)  # back for another visit

    def expire(run: af.Run[Order, Status], now: datetime) -> Status:
        calls.add("expire", run.run_id)
        return Status.EXPIRED

    b.add_timeout(Status.AWAITING, af.duration_timer(HALF_HOUR), expire, Status.EXPIRED)
    wf = start(b)
    run_id = wf.trigger("r-1")
    first = await_timeout_insert(wf, "r-1", run_id, Status.AWAITING)  # visit at version 2: expires at T0 + 30m
    clock.advance(timedelta(minutes=20))
    wf.callback("r-1", Status.AWAITING, b"{}")  # -> APPROVED (3) -> AWAITING again (4)
    second = poll_until(
        lambda: next((t for t in _timeouts_of(wf, run_id) if t.id != first.id), None), what="the second visit's timeout"
    )
    assert (first.record_version, second.record_version) == (2, 4)
    skipped_before = _skipped(wf, "timeout of an earlier visit")
    clock.advance(timedelta(minutes=10))  # the first visit's timeout expired, the second's has not
    poll_until(lambda: [t.id for t in _timeouts_of(wf, run_id)] == [second.id], what="the old timeout completed")
    assert _skipped(wf, "timeout of an earlier visit") == skipped_before + 1
    record = wf.record_store.lookup(run_id)
    assert (record.status, record.meta.version) == (Status.AWAITING, 4)
    assert calls.count("expire") == 0
    clock.advance(timedelta(minutes=20))  # the second visit's own timeout
    wf.await_status("r-1", run_id, Status.EXPIRED, timeout=5)
    assert calls.per_run("expire") == {run_id: 1}


def test_a_timeout_removed_by_another_writer_is_a_skip_not_a_crash(start, clock, expiring, poll_until):
    """The timeout vanishing under the poller (a node that held the role before cancelled it) is skipped."""
    calls = Calls()
    wf: af.Workflow[Order, Status]

    def expire(run: af.Run[Order, Status], now: datetime) -> Status:
        calls.add("expire", run.run_id)
        # As the other node does once it sees the run moved: it removes the timeout first.
        for timeout in _timeouts_of(wf, run.run_id):
            wf.timeout_store.cancel(timeout.id)
        return Status.EXPIRED

    wf = start(expiring(fn=expire))
    skipped_before, restarts_before = _skipped(wf, "timeout not found"), _restarts(wf)
    run_id = wf.trigger("e-1")
    await_timeout_insert(wf, "e-1", run_id, Status.AWAITING)
    clock.advance(HALF_HOUR)
    wf.await_status("e-1", run_id, Status.EXPIRED, timeout=5)
    poll_until(lambda: _skipped(wf, "timeout not found") == skipped_before + 1, what="the lost race counted")
    assert _restarts(wf) == restarts_before
    assert calls.per_run("expire") == {run_id: 1}


def test_a_timeout_whose_function_was_removed_is_completed_unfired(start, clock, expiring, poll_until):
    """A stored timeout naming a timer the status no longer has (the workflow changed) is skipped, not run."""
    calls = Calls()
    wf = start(expiring(calls=calls))
    run_id = wf.trigger("e-1")
    own = await_timeout_insert(wf, "e-1", run_id, Status.AWAITING)
    skipped_before = _skipped(wf, "timeout function not found")
    gone = wf.timeout_store.create(
        wf.name, "e-1", run_id, Status.AWAITING, T0, index=1, record_version=own.record_version
    )
    poll_until(lambda: [t.id for t in _timeouts_of(wf, run_id)] == [own.id], what="the orphan timeout completed")
    assert _skipped(wf, "timeout function not found") == skipped_before + 1
    assert gone != own.id
    assert calls.count("expire") == 0
    assert wf.record_store.lookup(run_id).status == Status.AWAITING


def test_a_run_moved_while_its_timeout_fires_is_a_skip_and_the_timeout_waits(start, clock, expiring, poll_until):
    """The run paused under the firing timeout: its result is refused and counted; resumed, the timeout fires."""
    calls = Calls()
    wf: af.Workflow[Order, Status]

    def expire(run: af.Run[Order, Status], now: datetime) -> Status:
        if calls.add("expire", run.run_id) == 1:
            wf.pause(run.run_id, "another writer")  # the run moves under the poller
        return Status.EXPIRED

    wf = start(expiring(fn=expire), pause_retry=None)
    conflicts_before = _skipped(wf, "record version conflict")
    run_id = wf.trigger("e-1")
    timeout = await_timeout_insert(wf, "e-1", run_id, Status.AWAITING)
    clock.advance(HALF_HOUR)
    poll_until(lambda: _skipped(wf, "record version conflict") == conflicts_before + 1, what="the refused result")
    assert wf.record_store.lookup(run_id).run_state is af.RunState.PAUSED
    assert timeout.id in [t.id for t in _timeouts_of(wf, run_id)]
    wf.resume(run_id)  # the same visit goes on: the timeout fires now
    wf.await_status("e-1", run_id, Status.EXPIRED, timeout=5)
    assert calls.per_run("expire") == {run_id: 2}
