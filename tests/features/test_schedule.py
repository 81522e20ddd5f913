"""Cron schedules: a foreign id triggered at every slot of its spec while the workflow runs."""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime, timedelta

import pykka
import pytest

import actorflow as af
from tests.model import T0, Order, Status

MINUTE = timedelta(minutes=1)


def _runs(wf: af.Workflow[Order, Status], foreign_id: str = "nightly") -> list[af.Record]:
    return wf.record_store.list(wf.name, filter=af.RecordFilter(foreign_ids=(foreign_id,)))


def _first_run(wf: af.Workflow[Order, Status]) -> None:
    """A completed run at T0: the schedule counts its slots from there, whenever its process starts."""
    run_id = wf.trigger("nightly")
    wf.await_status("nightly", run_id, Status.DONE, timeout=5)


def _await_run(wf: af.Workflow[Order, Status], count: int, poll_until) -> af.Record:
    """Wait for the ``count``-th run of the schedule and for it to complete; returns it."""
    poll_until(lambda: len(_runs(wf)) >= count, what=f"run {count} of the schedule")
    record = _runs(wf)[count - 1]
    wf.await_status("nightly", record.run_id, Status.DONE, timeout=5)
    return record


def test_a_schedule_triggers_runs_as_the_clock_advances(start, clock, linear, poll_until):
    """@every 1m triggers a run each time the workflow clock passes another minute."""
    wf = start(linear())
    _first_run(wf)
    wf.schedule("nightly", "@every 1m")
    clock.advance(MINUTE)
    assert _await_run(wf, 2, poll_until).created_at == T0 + MINUTE
    clock.advance(MINUTE)
    assert _await_run(wf, 3, poll_until).created_at == T0 + 2 * MINUTE


def test_with_no_earlier_run_the_first_slot_counts_from_registration(start, clock, linear, poll_until):
    """A foreign id that never ran is first triggered one interval after schedule() was called."""
    wf = start(linear())
    wf.schedule("nightly", "@every 1m")
    clock.advance(MINUTE)
    assert _await_run(wf, 1, poll_until).created_at == T0 + MINUTE


def test_slots_missed_while_not_running_fire_once(start, clock, linear, poll_until):
    """After ten missed minutes, starting again fires one run now, then the next slot a minute later."""
    wf = start(linear())
    _first_run(wf)
    wf.stop()
    clock.advance(10 * MINUTE)
    wf.schedule("nightly", "@every 1m")
    wf.run()
    assert _await_run(wf, 2, poll_until).created_at == T0 + 10 * MINUTE
    clock.advance(MINUTE)
    # A catch-up of the missed slots would have started this run at once, at T0 + 10m.
    assert _await_run(wf, 3, poll_until).created_at == T0 + 11 * MINUTE


def test_a_filter_skips_slots(start, clock, linear, poll_until):
    """A slot for which the filter returns False triggers nothing; the next slot that passes does."""
    seen: list[datetime] = []
    evaluated = threading.Event()

    def even_minutes(now: datetime) -> bool:
        seen.append(now)
        evaluated.set()
        return now.minute % 2 == 0

    wf = start(linear())
    _first_run(wf)
    wf.schedule("nightly", "@every 1m", filter=even_minutes)
    clock.advance(MINUTE)
    assert evaluated.wait(5)
    clock.advance(MINUTE)
    assert _await_run(wf, 2, poll_until).created_at == T0 + 2 * MINUTE
    assert seen == [T0 + MINUTE, T0 + 2 * MINUTE]


def test_a_schedule_triggers_with_its_initial_value(start, clock, linear, poll_until):
    """initial_value is the object of every scheduled run."""
    wf = start(linear())
    _first_run(wf)
    wf.schedule("nightly", "@every 1m", initial_value=Order(id="batch", amount=10))
    clock.advance(MINUTE)
    record = _await_run(wf, 2, poll_until)
    assert wf.await_status("nightly", record.run_id, Status.DONE, timeout=5).object.amount == 13


@pytest.mark.parametrize("spec", ["not a cron", "61 * * * *", "@every 0s", "@every soon", "@fortnightly"])
def test_a_bad_spec_raises_a_value_error(build, linear, spec):
    """An invalid spec raises at schedule() with an error that is a ValueError and an ActorflowError."""
    wf = build(linear())
    with pytest.raises(ValueError) as caught:
        wf.schedule("nightly", spec)
    assert isinstance(caught.value, af.ActorflowError)


def test_a_bad_spec_registers_no_schedule(build, linear):
    """After a refused spec, running the workflow starts no schedule process."""
    wf = build(linear())
    with pytest.raises(ValueError):
        wf.schedule("nightly", "not a cron")
    wf.run()
    assert not [name for name in wf.states() if "scheduler" in name]


def test_schedule_while_running_starts_at_once(start, linear, poll_until):
    """A schedule added to a running workflow gets its process without a restart."""
    wf = start(linear())
    wf.schedule("nightly", "@every 1m")
    poll_until(lambda: "nightly-scheduler-@every_1m" in wf.states(), what="the schedule process")


def test_schedule_before_run_starts_with_the_workflow(build, linear):
    """A schedule registered before run() is one of the processes run() starts."""
    wf = build(linear())
    wf.schedule("nightly", "@every 1m")
    wf.run()
    assert "nightly-scheduler-@every_1m" in wf.states()


def test_a_schedule_registered_twice_is_stopped_with_the_workflow(start, linear):
    """Registering the same schedule again (ignored or refused) leaves no actor running after stop()."""
    before = set(pykka.ActorRegistry.get_all())
    wf = start(linear())
    wf.schedule("nightly", "@every 1m")
    with contextlib.suppress(ValueError, af.ActorflowError):  # refusing the duplicate is fine too
        wf.schedule("nightly", "@every 1m")
    wf.stop()
    try:
        left = [ref for ref in pykka.ActorRegistry.get_all() if ref not in before]
        assert left == [], f"actors still running after stop(): {left}"
    finally:
        # A left-over actor thread would keep the test process from ever exiting.
        pykka.ActorRegistry.stop_all(block=True, timeout=5)


def test_a_raising_filter_is_retried_without_crashing_the_schedule(start, clock, linear, poll_until):
    """A filter that raises is a user error: retried after err_backoff, the process keeps RUNNING."""
    calls: list[datetime] = []

    def broken(now: datetime) -> bool:
        calls.append(now)
        msg = "calendar service down"
        raise RuntimeError(msg)

    wf = start(linear())
    _first_run(wf)
    wf.schedule("nightly", "@every 1m", filter=broken)
    clock.advance(MINUTE)
    # Retried every err_backoff (0.02s), eight tries take a fraction of a second; a process
    # that crashes instead is restarted with growing delays and marked FAILED after five.
    poll_until(lambda: len(calls) >= 8, timeout=5, what="eight tries of the failing filter")
    assert wf.states()["nightly-scheduler-@every_1m"] is af.ProcessState.RUNNING


def _one_step() -> af.Builder[Order, Status]:
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    return b


@pytest.mark.parametrize(
    ("foreign_id", "initial_value"),
    [
        (None, None),
        ("line\nbreak", None),
        ("x" * 256, None),
        ("nightly", {"id": "n-1"}),
        ("nightly", 42),
        ("nightly", Order(id=5)),  # the wrong field type is the point
    ],
    ids=["none-id", "newline-id", "long-id", "dict", "int", "wrong-field-type"],
)
def test_a_schedule_whose_trigger_would_fail_is_refused_at_registration(build, foreign_id, initial_value):
    """The foreign id and the initial value get the checks and errors of `trigger`, at `schedule`, not at each slot."""
    wf = build(_one_step())
    with pytest.raises(af.ActorflowError) as from_trigger:
        wf.trigger(foreign_id, initial_value)
    with pytest.raises(af.ActorflowError) as from_schedule:
        wf.schedule(foreign_id, "@every 1m", initial_value)
    assert type(from_schedule.value) is type(from_trigger.value)
    assert str(from_schedule.value) == str(from_trigger.value)
    assert isinstance(from_schedule.value, TypeError | ValueError)
    assert wf.schedules == []
    wf.schedule("nightly", "@every 1m", Order(id="n-1"))  # a good one still registers
    assert [s.foreign_id for s in wf.schedules] == ["nightly"]
