"""Edges of the input: durations out of range, statuses of another enum, a step, callback or timeout returning 0."""

from __future__ import annotations

import enum
import math
from datetime import timedelta

import pytest

import actorflow as af
from actorflow.errors import StatusTypeError
from actorflow.options import ResolvedOptions
from tests.model import Calls, Order, Status
from tests.waiting import eventually

DURATIONS = ["polling_frequency", "err_backoff", "lag", "lag_alert", "step_timeout", "commit_interval"]


class Other(enum.IntEnum):
    """Another enum whose values are statuses of `Status` too."""

    STARTED = 1
    AWAITING = 5


def _one_step() -> af.Builder[Order, Status]:
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    return b


# -- 1. durations ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DURATIONS)
@pytest.mark.parametrize("value", [timedelta(seconds=-1), -0.5, math.nan, math.inf], ids=repr)
def test_a_negative_or_non_finite_option_duration_is_refused(name, value):
    """A negative duration (a timedelta too), NaN or infinity raises BuildError, a ValueError naming the option."""
    with pytest.raises(af.BuildError, match=rf"Options\.{name}") as raised:
        af.Options(**{name: value})
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("name", DURATIONS)
def test_option_durations_of_zero_are_accepted_where_they_mean_something(name):
    """Zero means none (no lag, no alert, no step timeout...), except for the polling frequency (a busy loop)."""
    if name == "polling_frequency":
        with pytest.raises(af.BuildError, match="greater than 0"):
            af.Options(polling_frequency=timedelta(0))
    else:
        assert getattr(af.Options(**{name: timedelta(0)}), name) == 0.0


def test_resolved_and_outbox_options_check_their_durations():
    """ResolvedOptions and OutboxOptions refuse what Options refuses; timedeltas become seconds."""
    with pytest.raises(af.BuildError, match=r"ResolvedOptions\.lag"):
        ResolvedOptions(lag=-1.0)
    with pytest.raises(af.BuildError, match=r"OutboxOptions\.err_backoff"):
        af.OutboxOptions(err_backoff=timedelta(seconds=-1))  # type: ignore[arg-type]
    with pytest.raises(af.BuildError, match=r"OutboxOptions\.polling_frequency"):
        af.OutboxOptions(polling_frequency=0)
    with pytest.raises(af.BuildError, match=r"OutboxOptions\.lookup_limit"):
        af.OutboxOptions(lookup_limit=0)
    assert af.OutboxOptions(err_backoff=timedelta(seconds=2)).err_backoff == 2.0  # type: ignore[arg-type]


@pytest.mark.parametrize("pause_retry", [timedelta(seconds=-1), -1, 0, timedelta(0)], ids=repr)
def test_a_pause_retry_that_is_not_positive_is_refused_at_build(build, pause_retry):
    """build(pause_retry=...) must be more than 0 (None disables the retry)."""
    with pytest.raises(af.BuildError, match="pause_retry"):
        build(_one_step(), pause_retry=pause_retry)


# -- 2. statuses of another enum ------------------------------------------------------------


def test_start_at_of_another_enum_is_refused(build):
    """trigger/trigger_many(start_at=Other.STARTED) raise StatusTypeError naming both enums; nothing is stored."""
    wf = build(_one_step())
    for call in (
        lambda: wf.trigger("o-1", start_at=Other.STARTED),
        lambda: wf.trigger_many(["o-1"], start_at=Other.STARTED),
    ):
        with pytest.raises(StatusTypeError, match=r"Other\.STARTED.*Status") as raised:
            call()
        assert isinstance(raised.value, TypeError)
        assert isinstance(raised.value, af.ActorflowError)
    assert wf.record_store.list(wf.name) == []


def test_a_status_that_is_not_an_int_is_refused(build):
    """A bool or a string is no status: StatusTypeError."""
    wf = build(_one_step())
    for bad in (True, "1", 1.0):
        with pytest.raises(StatusTypeError):
            wf.trigger("o-1", start_at=bad)
    assert wf.record_store.list(wf.name) == []


def test_await_status_of_another_enum_is_refused(build):
    """await_status(..., Other.STARTED) raises StatusTypeError at once, not after the timeout."""
    wf = build(_one_step())
    run_id = wf.trigger("o-1")
    with pytest.raises(StatusTypeError, match=r"Other\.STARTED.*Status"):
        wf.await_status("o-1", run_id, Other.STARTED, timeout=5)


def test_callback_of_another_enum_is_refused(build):
    """callback(foreign_id, Other.AWAITING) raises StatusTypeError; the run is unchanged."""
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.AWAITING, Status.AWAITING)
    b.add_callback(Status.AWAITING, lambda run, payload: Status.APPROVED, Status.APPROVED)
    wf = build(b)
    run_id = wf.trigger("o-1", start_at=Status.AWAITING)
    with pytest.raises(StatusTypeError, match=r"Other\.AWAITING.*Status"):
        wf.callback("o-1", Other.AWAITING, b"{}")
    assert wf.record_store.lookup(run_id).meta.version == 1


def test_a_plain_int_status_is_still_accepted(build):
    """A plain int that is a status of the workflow is accepted (backwards compatible); others are unknown."""
    wf = build(_one_step())
    run_id = wf.trigger("o-1", start_at=1)
    assert wf.record_store.lookup(run_id).status == Status.STARTED
    assert wf.await_status("o-1", run_id, 1, timeout=5).status is Status.STARTED
    with pytest.raises(af.UnknownStatus):
        wf.trigger("o-2", start_at=42)


# -- 3. a step returning 0 ------------------------------------------------------------------


def test_a_step_returning_zero_skips_as_the_original(start):
    """A step returning 0 (the original's zero status) skips: no write, no error counted, the next event runs."""
    calls = Calls()
    b = af.Builder("orders", Order, Status)

    def charge(run: af.Run[Order, Status]) -> Status:
        calls.add("charge", run.run_id)
        return 0 if run.foreign_id == "zero" else Status.DONE  # type: ignore[return-value]

    b.add_step(Status.STARTED, charge, Status.DONE).with_options(af.Options(pause_after_err_count=1))
    wf = start(b, pause_retry=None)
    skipped = wf.trigger("zero")
    # A run on the same (only) shard goes on (not necessarily after it: a node hands its
    # own events to its consumers, which may overtake one the broker delivers).
    behind = wf.trigger("behind")
    wf.await_status("behind", behind, Status.DONE, timeout=5)
    eventually(lambda: calls.count("charge", skipped) == 1, what="the step returning 0 handled")
    record = wf.record_store.lookup(skipped)
    assert record.status == Status.STARTED
    assert record.run_state is af.RunState.INITIATED  # an error would have paused it (pause_after_err_count=1)
    assert record.meta.version == 1


def test_a_callback_returning_zero_skips_as_the_original(build):
    """A callback returning 0 is a skip, as for a step: nothing stored, no error, the run still waits."""
    calls = Calls()
    b = af.Builder("orders", Order, Status)

    def decide(run: af.Run[Order, Status], payload: bytes) -> Status:
        calls.add("decide", run.run_id)
        return 0 if payload == b"zero" else Status.APPROVED  # type: ignore[return-value]

    b.add_callback(Status.AWAITING, decide, Status.APPROVED)
    b.add_step(Status.STARTED, lambda run: Status.AWAITING, Status.AWAITING)
    wf = build(b, defaults=af.Options(pause_after_err_count=1))
    run_id = wf.trigger("c-1", start_at=Status.AWAITING)
    assert wf.callback("c-1", Status.AWAITING, b"zero") is None
    record = wf.record_store.lookup(run_id)
    assert (record.status, record.run_state, record.meta.version) == (Status.AWAITING, af.RunState.INITIATED, 1)
    wf.callback("c-1", Status.AWAITING, b"yes")  # still at its status: a later callback moves it
    assert wf.await_status("c-1", run_id, Status.APPROVED, timeout=5).meta.version == 2
    assert calls.count("decide", run_id) == 2


def test_a_timeout_returning_zero_skips_as_the_original(start, clock, poll_until):
    """A timeout function returning 0 is a skip: nothing stored, no error, the timeout completed (it fires once)."""
    from actorflow.testing import await_timeout_insert

    calls = Calls()
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.AWAITING, Status.AWAITING)

    def expire(run: af.Run[Order, Status], now: object) -> Status:
        calls.add("expire", run.run_id)
        return 0  # type: ignore[return-value]

    b.add_timeout(Status.AWAITING, af.duration_timer(timedelta(minutes=30)), expire, Status.EXPIRED).with_options(
        af.Options(pause_after_err_count=1)
    )
    b.add_callback(Status.AWAITING, lambda run, payload: Status.APPROVED, Status.APPROVED)
    wf = start(b, pause_retry=None)
    run_id = wf.trigger("t-1")
    await_timeout_insert(wf, "t-1", run_id, Status.AWAITING)
    clock.advance(timedelta(minutes=30))
    poll_until(lambda: not wf.timeout_store.list(wf.name), what="the timeout completed")  # list: the uncompleted
    assert calls.count("expire", run_id) == 1
    record = wf.record_store.lookup(run_id)
    assert (record.status, record.run_state, record.meta.version) == (Status.AWAITING, af.RunState.RUNNING, 2)
    clock.advance(timedelta(hours=1))  # completed: it never fires again, and the run still waits for its callback
    wf.callback("t-1", Status.AWAITING, b"")
    assert wf.await_status("t-1", run_id, Status.APPROVED, timeout=5).meta.version == 3
    assert calls.count("expire", run_id) == 1


@pytest.mark.parametrize("bad", [-1, timedelta(seconds=-1), math.nan])
def test_a_duration_timer_out_of_range_is_refused(bad):
    """A timeout's duration is checked when the timer is made: a negative one would fire at once."""
    with pytest.raises(af.BuildError, match="duration"):
        af.duration_timer(bad)


@pytest.mark.parametrize("bad", [0, -1, timedelta(seconds=-1)])
def test_a_memory_role_scheduler_ttl_out_of_range_is_refused(bad):
    """MemoryRoleScheduler(ttl=...) gets the same check as the other adapters' durations."""
    from actorflow.adapters.memory import MemoryRoleScheduler

    with pytest.raises(af.BuildError, match="ttl"):
        MemoryRoleScheduler(ttl=bad)


# -- foreign ids: one rule for every backend ----------------------------------------------

BAD_FOREIGN_IDS = [None, 7, b"bytes", "", "x" * 256, "a\x00b", "line\nforged", "\ud800"]
EDGE_FOREIGN_IDS = ["x" * 255, "€" * 255, "👨‍👩‍👧 family", "a,b;c 'd' \"e\" %_\\", "  spaced  "]


@pytest.mark.parametrize("bad", BAD_FOREIGN_IDS, ids=repr)
def test_a_foreign_id_outside_the_rule_is_refused_before_any_write(build, bad):
    """trigger, trigger_many and callback refuse it with InvalidForeignId (a ValueError and a TypeError);
    nothing is stored, on every backend alike."""
    wf = build(_one_step())
    with pytest.raises(af.InvalidForeignId) as raised:
        wf.trigger(bad)
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, TypeError)
    with pytest.raises(af.InvalidForeignId):
        wf.trigger_many(["fine", bad])
    with pytest.raises(af.InvalidForeignId):
        wf.callback(bad, Status.STARTED, b"{}")
    with pytest.raises(af.RecordNotFound):
        wf.record_store.latest(wf.name, "fine")  # the good one of the batch was not stored either


@pytest.mark.parametrize("foreign_id", EDGE_FOREIGN_IDS, ids=lambda f: f"{f[:12]!r}x{len(f)}")
def test_a_foreign_id_at_the_rules_edges_is_kept_exactly(build, foreign_id):
    """The longest, multi-byte, emoji and punctuation ids round-trip and are found exactly on every backend."""
    wf = build(_one_step())
    run_id = wf.trigger(foreign_id)
    assert wf.record_store.latest(wf.name, foreign_id).run_id == run_id
    assert wf.record_store.lookup(run_id).foreign_id == foreign_id
