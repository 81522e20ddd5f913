"""actorflow.testing: unit-testing one step with `new_testing_run`, and the waits' contracts.

None of these tests runs a workflow: `new_testing_run` needs only a built one, and the
waits read what `trigger` and `callback` (both synchronous) store on memory adapters.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler, MemoryTimeoutStore
from actorflow.protocols import TimeoutStore
from actorflow.status import RUN_STATE_UPDATED, SAVE_AND_REPEAT, SKIP
from actorflow.testing import (
    FakeClock,
    await_timeout_insert,
    new_testing_run,
    require,
    trigger_callback_on,
    wait_for,
)


class Status(enum.IntEnum):
    STARTED = 1
    CHARGED = 2
    DONE = 3
    REFUNDED = 4


@dataclasses.dataclass
class Order:
    id: str = ""
    amount: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)


def charge(run: af.Run[Order, Status]) -> Status:
    """The step under test: what a user would write."""
    if run.object.amount < 0:
        return run.cancel("negative amount")
    if "fraud" in run.object.notes:
        return run.pause("fraud check")
    if "later" in run.object.notes:
        return run.skip()
    if run.object.amount < 3:
        run.object.amount += 1
        return run.save_and_repeat()
    run.object.notes.append("charged")
    return Status.CHARGED


def _builder() -> af.Builder[Order, Status]:
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, charge, Status.CHARGED)
    b.add_callback(Status.CHARGED, lambda run, payload: Status.DONE, Status.DONE)
    return b


def _workflow(*, timeout_store: TimeoutStore | None = None) -> af.Workflow[Order, Status]:
    """Built, never run: nothing runs the steps."""
    return _builder().build(
        MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), timeout_store=timeout_store
    )


# -- new_testing_run ---------------------------------------------------------------------------


def test_a_step_is_unit_tested_with_a_testing_run():
    """The run carries the object and status given; the step's result and changes are seen directly."""
    wf = _workflow()
    order = Order(id="o-1", amount=5)
    run = new_testing_run(wf, order, Status.STARTED, foreign_id="o-1", run_id="run-1")
    assert charge(run) == Status.CHARGED
    assert run.object is order  # the step changed the test's own object
    assert order.notes == ["charged"]
    assert (run.workflow_name, run.foreign_id, run.run_id) == ("orders", "o-1", "run-1")
    assert run.status is Status.STARTED
    assert run.run_state is af.RunState.RUNNING
    assert run.meta.version == 1
    assert run.meta.status_description == "Started"
    # Nothing was stored or published: a testing run never touches the adapters.
    assert wf.record_store.list("orders") == []


def test_a_testing_run_has_defaults_for_its_identity():
    """Without them: foreign id "test-foreign-id", a fresh uuid run id, Running."""
    wf = _workflow()
    first = new_testing_run(wf, Order(amount=5), Status.STARTED)
    second = new_testing_run(wf, Order(amount=5), Status.STARTED)
    assert first.foreign_id == "test-foreign-id"
    assert uuid.UUID(first.run_id)
    assert first.run_id != second.run_id
    assert first.run_state is af.RunState.RUNNING


def test_a_testing_run_is_shown_as_the_engine_shows_runs_to_steps():
    """A paused run stays paused; an Initiated one is seen as Running, as a step sees it."""
    wf = _workflow()
    assert new_testing_run(wf, Order(), Status.STARTED, run_state=af.RunState.PAUSED).run_state is af.RunState.PAUSED
    initiated = new_testing_run(wf, Order(), Status.STARTED, run_state=af.RunState.INITIATED)
    assert initiated.run_state is af.RunState.RUNNING


def test_a_testing_run_refuses_a_status_the_workflow_does_not_have():
    """A status outside the workflow's enum is a clear error, not a run at a strange status."""
    wf = _workflow()
    with pytest.raises(af.ActorflowError, match="status 42"):
        new_testing_run(wf, Order(), 42)


@pytest.mark.parametrize(
    ("order", "result", "hook", "reason"),
    [
        (Order(notes=["fraud"]), RUN_STATE_UPDATED, "pause", "fraud check"),
        (Order(amount=-1), RUN_STATE_UPDATED, "cancel", "negative amount"),
        (Order(amount=1), SAVE_AND_REPEAT, "save_and_repeat", ""),
    ],
    ids=["pause", "cancel", "save_and_repeat"],
)
def test_the_sentinels_call_their_hook_with_the_reason(order, result, hook, reason):
    """pause_fn / cancel_fn / save_and_repeat_fn see the step's request; the step returns the sentinel."""
    wf = _workflow()
    called: dict[str, list[str]] = {"pause": [], "cancel": [], "save_and_repeat": []}

    def recorder(name: str) -> Callable[[str], None]:
        return called[name].append

    run = new_testing_run(
        wf,
        order,
        Status.STARTED,
        pause_fn=recorder("pause"),
        cancel_fn=recorder("cancel"),
        save_and_repeat_fn=recorder("save_and_repeat"),
    )
    assert charge(run) == result
    assert called == {name: ([reason] if name == hook else []) for name in called}


def test_save_and_repeat_keeps_the_step_s_change_to_the_object():
    """A step that saves and repeats has changed the object it will be called again with."""
    wf = _workflow()
    run = new_testing_run(wf, Order(amount=1), Status.STARTED)
    assert charge(run) == SAVE_AND_REPEAT
    assert run.object.amount == 2


def test_skip_needs_no_hook():
    """run.skip() returns the skip sentinel (0); no hook is involved."""
    wf = _workflow()
    run = new_testing_run(wf, Order(amount=5, notes=["later"]), Status.STARTED)
    result = charge(run)
    assert result == SKIP
    assert result == run.skip()


def test_the_sentinels_work_without_hooks():
    """Hooks are optional: pause and cancel without them still return the run-state sentinel."""
    wf = _workflow()
    assert charge(new_testing_run(wf, Order(notes=["fraud"]), Status.STARTED)) == RUN_STATE_UPDATED
    assert charge(new_testing_run(wf, Order(amount=-1), Status.STARTED)) == RUN_STATE_UPDATED


# -- wait_for / require ------------------------------------------------------------------------


def test_wait_for_finds_a_version_the_run_has_already_moved_past():
    """Every stored version counts: CHARGED is found after the run went on to DONE."""
    wf = _workflow()
    run_id = wf.trigger("o-1", Order(id="o-1", amount=7), start_at=Status.CHARGED)
    wf.callback("o-1", Status.CHARGED, b"{}")
    assert wf.record_store.lookup(run_id).status == Status.DONE
    found = wait_for(wf, "o-1", lambda run: run.status == Status.CHARGED, timeout=2)
    assert (found.run_id, found.status, found.meta.version) == (run_id, Status.CHARGED, 1)
    assert found.object == Order(id="o-1", amount=7)


def test_wait_for_returns_once_another_thread_stores_the_awaited_version():
    """It wakes on the engine's notification of a write."""
    wf = _workflow()
    wf.trigger("o-1", Order(id="o-1"), start_at=Status.CHARGED)
    mover = threading.Thread(target=wf.callback, args=("o-1", Status.CHARGED, b"{}"))
    mover.start()
    try:
        found = wait_for(wf, "o-1", lambda run: run.status == Status.DONE, timeout=5)
    finally:
        mover.join(5)
    assert found.run_state is af.RunState.COMPLETED


def test_wait_for_fails_the_test_when_the_condition_never_holds():
    wf = _workflow()
    wf.trigger("o-1", Order(id="o-1"))
    with pytest.raises(AssertionError, match="never met the condition"):
        wait_for(wf, "o-1", lambda run: run.status == Status.DONE, timeout=0.1)


def test_wait_for_fails_the_test_when_no_run_appears():
    wf = _workflow()
    with pytest.raises(AssertionError, match="no run of 'orders' for foreign id 'ghost'"):
        wait_for(wf, "ghost", lambda run: True, timeout=0.1)


def test_require_compares_the_object_at_the_status():
    """require returns the run at the status when its object is the expected one, else fails the test."""
    wf = _workflow()
    run_id = wf.trigger("o-1", Order(id="o-1", amount=2, notes=["a"]))
    assert require(wf, "o-1", Status.STARTED, Order(id="o-1", amount=2, notes=["a"]), timeout=1).run_id == run_id
    with pytest.raises(AssertionError, match="expected"):
        require(wf, "o-1", Status.STARTED, Order(id="o-1", amount=3, notes=["a"]), timeout=1)


def test_require_refuses_a_status_outside_the_graph():
    wf = _workflow()
    wf.trigger("o-1", Order(id="o-1"))
    with pytest.raises(af.UnknownStatus):
        require(wf, "o-1", Status.REFUNDED, Order(id="o-1"), timeout=0.1)


# -- trigger_callback_on / await_timeout_insert --------------------------------------------------


def test_trigger_callback_on_sends_bytes_as_they_are_and_other_payloads_as_json():
    payloads: list[bytes] = []
    b = af.Builder("approvals", Order, Status)

    def approve(run: af.Run[Order, Status], payload: bytes) -> Status:
        payloads.append(payload)
        return run.skip()

    b.add_callback(Status.STARTED, approve, Status.DONE)
    wf = b.build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())
    run_id = wf.trigger("a-1", Order(id="a-1"))
    trigger_callback_on(wf, "a-1", run_id, Status.STARTED, b"\x00raw", timeout=1)
    trigger_callback_on(wf, "a-1", run_id, Status.STARTED, {"approved": True}, timeout=1)
    assert payloads == [b"\x00raw", json.dumps({"approved": True}).encode()]


def test_await_timeout_insert_needs_a_timeout_store():
    wf = _workflow()
    run_id = wf.trigger("o-1", Order(id="o-1"))
    with pytest.raises(AssertionError, match="has no timeout store"):
        await_timeout_insert(wf, "o-1", run_id, Status.STARTED, timeout=0.1)


def test_await_timeout_insert_fails_the_test_when_no_timeout_is_inserted():
    wf = _workflow(timeout_store=MemoryTimeoutStore())
    run_id = wf.trigger("o-1", Order(id="o-1"))
    with pytest.raises(AssertionError, match="no timeout for run"):
        await_timeout_insert(wf, "o-1", run_id, Status.STARTED, timeout=0.1)


# -- FakeClock ---------------------------------------------------------------------------------


def test_fake_clock_wakes_a_waiter_blocked_in_another_thread():
    """A thread waiting for a fake time returns as soon as the clock is advanced past it."""
    clock = FakeClock(datetime(2024, 1, 1, tzinfo=UTC))
    deadline = clock.now() + timedelta(minutes=5)
    waiting = threading.Event()
    woke_at: list[datetime] = []

    def waiter() -> None:
        waiting.set()
        clock.wait_until(deadline, timeout=30)
        woke_at.append(clock.now())

    thread = threading.Thread(target=waiter)
    thread.start()
    assert waiting.wait(5)
    clock.advance(300)
    thread.join(5)
    assert not thread.is_alive(), "the waiter was not woken by advance()"
    assert woke_at == [deadline]


def test_fake_clock_waits_at_most_its_real_timeout_and_needs_an_aware_start():
    clock = FakeClock()
    assert clock.now() == datetime(2024, 1, 1, tzinfo=UTC)
    clock.wait_until(clock.now() + timedelta(days=1), timeout=0.01)  # returns: the time did not move
    assert clock.now() == datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2024, 1, 1))  # noqa: DTZ001 - the naive time under test
