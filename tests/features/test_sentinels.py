"""What a step's sentinel results do: skip, save-and-repeat, pause and cancel."""

from __future__ import annotations

import logging
import threading

import pytest

import actorflow as af
from tests.model import Calls, Order, Status


def test_skip_writes_nothing_and_leaves_the_run_where_it_is(start):
    """run.skip(): no write; the run stays at its status, Initiated, at version 1."""
    calls = Calls()
    b = af.Builder("orders", Order, Status)

    def charge(run: af.Run[Order, Status]) -> Status:
        calls.add("charge", run.run_id)
        if run.foreign_id == "skipper":
            return run.skip()
        return Status.DONE

    b.add_step(Status.STARTED, charge, Status.DONE)
    wf = start(b)
    skipped = wf.trigger("skipper")
    # A run behind it on the same (only) shard: once it is done, the skip was handled.
    behind = wf.trigger("behind")
    wf.await_status("behind", behind, Status.DONE, timeout=5)
    record = wf.record_store.lookup(skipped)
    assert calls.count("charge", skipped) == 1
    assert record.status == Status.STARTED
    assert record.run_state is af.RunState.INITIATED
    assert record.meta.version == 1


def test_save_and_repeat_stores_the_object_and_runs_the_step_again(start):
    """run.save_and_repeat(): the object is stored at the same status and the step runs again."""
    calls = Calls()
    b = af.Builder("counter", Order, Status)

    def count(run: af.Run[Order, Status]) -> Status:
        calls.add("count", run.run_id)
        run.object.amount += 1
        if run.object.amount < 3:
            return run.save_and_repeat()
        return Status.DONE

    b.add_step(Status.STARTED, count, Status.DONE)
    wf = start(b)
    run_id = wf.trigger("c-1")
    run = wf.await_status("c-1", run_id, Status.DONE, timeout=5)
    assert run.object.amount == 3
    assert calls.count("count", run_id) == 3
    # Two repeats (versions 2 and 3, still STARTED) and the move to DONE (version 4).
    assert run.meta.version == 4


def test_save_and_repeat_keeps_the_status_and_the_running_state(start):
    """A repeated step sees its previous save: same status, run state RUNNING, the saved object."""
    seen: list[tuple[Status, af.RunState, int, int]] = []
    b = af.Builder("counter", Order, Status)

    def count(run: af.Run[Order, Status]) -> Status:
        seen.append((run.status, run.run_state, run.meta.version, run.object.amount))
        run.object.amount += 1
        return run.save_and_repeat() if run.object.amount < 3 else Status.DONE

    b.add_step(Status.STARTED, count, Status.DONE)
    wf = start(b)
    run_id = wf.trigger("c-1")
    wf.await_status("c-1", run_id, Status.DONE, timeout=5)
    assert seen == [
        (Status.STARTED, af.RunState.RUNNING, 1, 0),
        (Status.STARTED, af.RunState.RUNNING, 2, 1),
        (Status.STARTED, af.RunState.RUNNING, 3, 2),
    ]


def test_pause_from_a_step_pauses_the_run_with_its_reason(start):
    """run.pause(reason): the run is PAUSED at its status, with the reason, in one write."""
    paused = threading.Event()
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: run.pause("needs review"), Status.DONE)
    b.on_pause(lambda record: paused.set())
    wf = start(b, pause_retry=None)
    run_id = wf.trigger("o-1")
    assert paused.wait(5)
    record = wf.record_store.lookup(run_id)
    assert record.run_state is af.RunState.PAUSED
    assert record.meta.run_state_reason == "needs review"
    assert record.status == Status.STARTED
    assert record.meta.version == 2


def test_pause_from_a_step_fires_the_on_pause_hook(start):
    """The on_pause hook receives the paused run as a TypedRecord."""
    hooked: list[af.TypedRecord[Order, Status]] = []
    done = threading.Event()
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: run.pause("needs review"), Status.DONE)

    def on_pause(record: af.TypedRecord[Order, Status]) -> None:
        hooked.append(record)
        done.set()

    b.on_pause(on_pause)
    wf = start(b, pause_retry=None)
    run_id = wf.trigger("o-1", Order(id="o-1"))
    assert done.wait(5)
    (record,) = hooked
    assert record.run_id == run_id
    assert record.run_state is af.RunState.PAUSED
    assert record.meta.run_state_reason == "needs review"
    assert record.object == Order(id="o-1")


def test_cancel_from_a_step_cancels_the_run_with_its_reason(start):
    """run.cancel(reason) from the first step works (the run is seen as Running) and is stored."""
    cancelled = threading.Event()
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: run.cancel("out of stock"), Status.DONE)
    b.on_cancel(lambda record: cancelled.set())
    wf = start(b)
    run_id = wf.trigger("o-1")
    assert cancelled.wait(5)
    record = wf.record_store.lookup(run_id)
    assert record.run_state is af.RunState.CANCELLED
    assert record.meta.run_state_reason == "out of stock"
    assert record.status == Status.STARTED
    assert record.meta.version == 2


def test_cancel_from_a_step_fires_the_on_cancel_hook(start):
    """The on_cancel hook receives the cancelled run as a TypedRecord."""
    hooked: list[af.TypedRecord[Order, Status]] = []
    done = threading.Event()
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: run.cancel("out of stock"), Status.DONE)

    def on_cancel(record: af.TypedRecord[Order, Status]) -> None:
        hooked.append(record)
        done.set()

    b.on_cancel(on_cancel)
    wf = start(b)
    run_id = wf.trigger("o-1")
    assert done.wait(5)
    (record,) = hooked
    assert record.run_id == run_id
    assert record.run_state is af.RunState.CANCELLED
    assert record.meta.run_state_reason == "out of stock"


@pytest.mark.parametrize(
    ("action", "state"), [("pause", af.RunState.PAUSED), ("cancel", af.RunState.CANCELLED)], ids=["pause", "cancel"]
)
def test_a_step_that_pauses_or_cancels_then_returns_a_status_is_stored_as_paused_or_cancelled(
    start, poll_until, caplog, action, state
):
    """The run-state change wins over a status returned after it: stored as loaded, the status dropped, a warning."""
    b = af.Builder("orders", Order, Status)

    def charge(run: af.Run[Order, Status]) -> Status:
        run.object.amount = 99  # not saved, as with a plain pause
        getattr(run, action)("needs review")
        return Status.DONE

    b.add_step(Status.STARTED, charge, Status.DONE)
    wf = start(b, pause_retry=None)
    with caplog.at_level(logging.WARNING, logger="actorflow"):
        run_id = wf.trigger("o-1", Order(id="o-1", amount=1))
        record = poll_until(
            lambda: (r := wf.record_store.lookup(run_id)).meta.version > 1 and r, what="the step's write"
        )
    assert (record.status, record.run_state, record.meta.version) == (Status.STARTED, state, 2)
    assert record.meta.run_state_reason == "needs review"
    assert wf.codec.decode(record.object) == Order(id="o-1", amount=1)
    dropped = [r.getMessage() for r in caplog.records if run_id in r.getMessage()]
    assert any("'Done'" in message and str(state) in message for message in dropped), dropped
