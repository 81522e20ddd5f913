"""Callbacks: an outside caller moves a run waiting at a status, through the user's function."""

from __future__ import annotations

import json
import logging
import threading

import pytest

import actorflow as af
from actorflow.testing import trigger_callback_on
from tests.model import Calls, Order, Status


@pytest.fixture
def approvals():
    """``approvals(calls)``: STARTED -step-> AWAITING -callback-> APPROVED | REJECTED by the payload."""

    def _builder(calls: Calls | None = None) -> af.Builder[Order, Status]:
        log = calls if calls is not None else Calls()
        b = af.Builder("approvals", Order, Status)
        b.add_step(Status.STARTED, lambda run: Status.AWAITING, Status.AWAITING)

        def decide(run: af.Run[Order, Status], payload: bytes) -> Status:
            log.add("decide", run.run_id)
            body = json.loads(payload)
            run.object.notes.append(body.get("note", ""))
            return Status.APPROVED if body["approved"] else Status.REJECTED

        b.add_callback(Status.AWAITING, decide, Status.APPROVED, Status.REJECTED)
        return b

    return _builder


def test_a_callback_moves_the_run_with_the_payload(start, approvals):
    """The payload reaches the callback function, whose result and object changes are stored."""
    wf = start(approvals())
    run_id = wf.trigger("a-1", Order(id="a-1"))
    wf.await_status("a-1", run_id, Status.AWAITING, timeout=5)
    assert wf.callback("a-1", Status.AWAITING, b'{"approved": true, "note": "ok by Ann"}') is None
    run = wf.await_status("a-1", run_id, Status.APPROVED, timeout=5)
    assert run.object.notes == ["ok by Ann"]
    assert run.run_state is af.RunState.COMPLETED
    assert run.meta.version == 3


def test_trigger_callback_on_calls_back_once_the_run_is_there(start, approvals):
    """The testing helper waits for the status, then calls back with the JSON of the payload."""
    wf = start(approvals())
    run_id = wf.trigger("a-1")
    trigger_callback_on(wf, "a-1", run_id, Status.AWAITING, {"approved": False})
    assert wf.await_status("a-1", run_id, Status.REJECTED, timeout=5).status is Status.REJECTED


def test_a_callback_works_without_running_the_workflow(build, approvals):
    """A callback runs in the caller: a workflow instance that never ran can move a run."""
    wf = build(approvals())
    run_id = wf.trigger("a-1", start_at=Status.AWAITING)
    wf.callback("a-1", Status.AWAITING, b'{"approved": true}')
    record = wf.record_store.lookup(run_id)
    assert record.status == Status.APPROVED
    assert record.meta.version == 2


def test_a_callback_for_another_status_changes_nothing(build, approvals):
    """When the latest run is not at the callback's status, callback returns None and stores nothing."""
    calls = Calls()
    wf = build(approvals(calls))
    run_id = wf.trigger("a-1")  # at STARTED
    assert wf.callback("a-1", Status.AWAITING, b'{"approved": true}') is None
    record = wf.record_store.lookup(run_id)
    assert (record.status, record.meta.version) == (Status.STARTED, 1)
    assert calls.count("decide") == 0


def test_a_callback_for_a_stopped_run_changes_nothing(build, approvals):
    """A paused run at the callback's status is left alone: None, nothing stored, function not called."""
    calls = Calls()
    wf = build(approvals(calls))
    run_id = wf.trigger("a-1", start_at=Status.AWAITING)
    wf.pause(run_id, "on hold")
    assert wf.callback("a-1", Status.AWAITING, b'{"approved": true}') is None
    record = wf.record_store.lookup(run_id)
    assert (record.status, record.run_state, record.meta.version) == (Status.AWAITING, af.RunState.PAUSED, 2)
    assert calls.count("decide") == 0


def test_a_callback_for_a_status_outside_the_graph_raises_unknown_status(build, approvals):
    """UnknownStatus for a status the workflow's graph does not have."""
    wf = build(approvals())
    wf.trigger("a-1", start_at=Status.AWAITING)
    with pytest.raises(af.UnknownStatus):
        wf.callback("a-1", Status.UNUSED, b"{}")


def test_a_callback_for_an_unknown_foreign_id_raises_record_not_found(build, approvals):
    """RecordNotFound when the foreign id has no run."""
    wf = build(approvals())
    with pytest.raises(af.RecordNotFound):
        wf.callback("nobody", Status.AWAITING, b'{"approved": true}')


def test_a_callback_to_a_status_without_callbacks_still_checks_the_foreign_id(build, approvals):
    """RecordNotFound for an unknown foreign id even when ``status`` has no callback; else nothing."""
    wf = build(approvals())
    with pytest.raises(af.RecordNotFound):
        wf.callback("nobody", Status.STARTED, b"{}")
    run_id = wf.trigger("a-1")
    assert wf.callback("a-1", Status.STARTED, b"{}") is None
    assert wf.record_store.lookup(run_id).meta.version == 1


def test_a_callback_that_raises_is_a_step_error_and_stores_nothing(build, approvals):
    """A payload the function rejects raises StepError (cause chained); the run is unchanged."""
    wf = build(approvals())
    run_id = wf.trigger("a-1", start_at=Status.AWAITING)
    with pytest.raises(af.StepError) as caught:
        wf.callback("a-1", Status.AWAITING, b"not json")
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)
    record = wf.record_store.lookup(run_id)
    assert (record.status, record.run_state, record.meta.version) == (Status.AWAITING, af.RunState.INITIATED, 1)


def test_a_callback_result_outside_its_destinations_is_a_step_error(build):
    """A callback may only move the run to one of its destinations; otherwise StepError, nothing stored."""
    b = af.Builder("approvals", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.AWAITING, Status.AWAITING)
    b.add_callback(Status.AWAITING, lambda run, payload: Status.STARTED, Status.APPROVED)
    wf = build(b)
    run_id = wf.trigger("a-1", start_at=Status.AWAITING)
    with pytest.raises(af.StepError):
        wf.callback("a-1", Status.AWAITING, b"{}")
    record = wf.record_store.lookup(run_id)
    assert (record.status, record.meta.version) == (Status.AWAITING, 1)


def test_a_callback_skip_stores_nothing(build):
    """A callback returning run.skip() leaves the run waiting."""
    b = af.Builder("approvals", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.AWAITING, Status.AWAITING)
    b.add_callback(Status.AWAITING, lambda run, payload: run.skip(), Status.APPROVED)
    wf = build(b)
    run_id = wf.trigger("a-1", start_at=Status.AWAITING)
    assert wf.callback("a-1", Status.AWAITING, b"{}") is None
    assert wf.record_store.lookup(run_id).meta.version == 1


def test_callback_errors_pause_the_run_at_the_default_error_limit(build, approvals):
    """Callback errors count toward pause_after_err_count: at the limit the run is paused."""
    wf = build(approvals(), defaults=af.Options(pause_after_err_count=2, polling_frequency=0.02), pause_retry=None)
    run_id = wf.trigger("a-1", start_at=Status.AWAITING)
    for _ in range(2):
        with pytest.raises(af.StepError):
            wf.callback("a-1", Status.AWAITING, b"not json")
    record = wf.record_store.lookup(run_id)
    assert record.run_state is af.RunState.PAUSED
    assert record.meta.run_state_reason == "max error retry threshold hit - automatically paused"
    assert (record.status, record.meta.version) == (Status.AWAITING, 2)


@pytest.mark.parametrize(
    ("action", "state"), [("pause", af.RunState.PAUSED), ("cancel", af.RunState.CANCELLED)], ids=["pause", "cancel"]
)
def test_a_callback_that_pauses_or_cancels_then_returns_a_status_is_stored_as_paused_or_cancelled(
    build, caplog, action, state
):
    """The run-state change wins over the returned status: stored as loaded, the status dropped, a warning."""
    b = af.Builder("approvals", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.AWAITING, Status.AWAITING)

    def decide(run: af.Run[Order, Status], payload: bytes) -> Status:
        run.object.notes.append("seen")  # not saved, as with a plain pause
        getattr(run, action)("needs a second look")
        return Status.APPROVED

    b.add_callback(Status.AWAITING, decide, Status.APPROVED)
    wf = build(b)
    run_id = wf.trigger("a-1", Order(id="a-1"), start_at=Status.AWAITING)
    with caplog.at_level(logging.WARNING, logger="actorflow"):
        assert wf.callback("a-1", Status.AWAITING, b"{}") is None
    record = wf.record_store.lookup(run_id)
    assert (record.status, record.run_state, record.meta.version) == (Status.AWAITING, state, 2)
    assert record.meta.run_state_reason == "needs a second look"
    assert wf.codec.decode(record.object) == Order(id="a-1")
    dropped = [r.getMessage() for r in caplog.records if run_id in r.getMessage()]
    assert any("'Approved'" in message and str(state) in message for message in dropped), dropped


def test_of_two_racing_callbacks_one_moves_the_run_and_the_other_returns_none(build, approvals):
    """Both read the run at AWAITING before either writes: one stores its status, the loser changes nothing.

    The loser's write is refused (the run moved); it looks at the run again, finds it no
    longer at AWAITING and returns None, as a callback arriving after the move would.
    """
    calls = Calls()
    both_read = threading.Barrier(2, timeout=5)
    b = af.Builder("approvals", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.AWAITING, Status.AWAITING)

    def decide(run: af.Run[Order, Status], payload: bytes) -> Status:
        calls.add("decide", run.run_id)
        both_read.wait()  # each caller holds the run at version 1 before either writes
        run.object.notes.append(payload.decode())
        return Status.APPROVED if payload == b"yes" else Status.REJECTED

    b.add_callback(Status.AWAITING, decide, Status.APPROVED, Status.REJECTED)
    wf = build(b)
    run_id = wf.trigger("a-1", Order(id="a-1"), start_at=Status.AWAITING)
    returned: dict[bytes, object] = {}

    def call_back(payload: bytes) -> None:
        try:
            returned[payload] = wf.callback("a-1", Status.AWAITING, payload)
        except Exception as exc:  # the test reports what either caller raised
            returned[payload] = exc

    threads = [threading.Thread(target=call_back, args=(payload,)) for payload in (b"yes", b"no")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert returned == {b"yes": None, b"no": None}
    record = wf.record_store.lookup(run_id)
    assert record.meta.version == 2
    winner = {Status.APPROVED: "yes", Status.REJECTED: "no"}[Status(record.status)]
    assert wf.codec.decode(record.object).notes == [winner]
    assert record.run_state is af.RunState.COMPLETED
    assert calls.count("decide", run_id) == 2  # the loser found the run moved: its function was not called again
