"""Trigger: start a run for a foreign id, at the default or a chosen status, one unfinished at a time."""

from __future__ import annotations

import threading
import uuid

import pytest

import actorflow as af
from tests.model import T0, Calls, Order, Status


def _nothing_stored(wf: af.Workflow[Order, Status], foreign_id: str) -> None:
    with pytest.raises(af.RecordNotFound):
        wf.record_store.latest(wf.name, foreign_id)
    assert wf.record_store.list_outbox_events(wf.name, 10) == []


def test_trigger_returns_the_run_id_of_the_stored_run(build, linear):
    """The run id is a UUID; the run is stored at the start status, INITIATED, version 1."""
    wf = build(linear())
    run_id = wf.trigger("o-1", Order(id="o-1"))
    assert str(uuid.UUID(run_id)) == run_id
    record = wf.record_store.lookup(run_id)
    assert (record.foreign_id, record.status, record.run_state) == ("o-1", Status.STARTED, af.RunState.INITIATED)
    assert record.meta.version == 1
    assert record.created_at == record.updated_at == T0
    assert wf.record_store.latest(wf.name, "o-1") == record


def test_trigger_records_where_it_was_called_from(build, linear):
    """meta.trace_origin names the caller (this test), not the library."""
    wf = build(linear())
    run_id = wf.trigger("o-1")
    assert "test_trigger_records_where_it_was_called_from" in wf.record_store.lookup(run_id).meta.trace_origin


def test_trigger_without_initial_value_stores_a_default_object(build, linear):
    """Without initial_value the object is object_type(), never None."""
    wf = build(linear())
    run_id = wf.trigger("o-1")
    assert wf.codec.decode(wf.record_store.lookup(run_id).object) == Order()


def test_trigger_at_a_later_status_runs_from_there(start, linear):
    """start_at names any non-terminal status: the run starts there and earlier steps never run."""
    calls = Calls()
    wf = start(linear(calls))
    run_id = wf.trigger("o-1", start_at=Status.SHIPPED)
    run = wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    assert calls.count("charge") == calls.count("ship") == 0
    assert run.object.notes == ["finish"]


def test_trigger_at_any_starting_status_of_a_graph_with_several(start):
    """A graph may have several starting statuses; trigger may start at any of them."""
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    b.add_step(Status.AWAITING, lambda run: Status.DONE, Status.DONE)
    wf = start(b)
    first = wf.trigger("o-1")
    assert wf.await_status("o-1", first, Status.STARTED, timeout=5).status is Status.STARTED
    wf.await_status("o-1", first, Status.DONE, timeout=5)
    second = wf.trigger("o-1", start_at=Status.AWAITING)
    assert wf.await_status("o-1", second, Status.AWAITING, timeout=5).meta.version == 1
    wf.await_status("o-1", second, Status.DONE, timeout=5)


def test_trigger_at_a_terminal_status_is_refused(build, linear):
    """start_at a terminal status raises InvalidTransition and stores nothing."""
    wf = build(linear())
    with pytest.raises(af.InvalidTransition):
        wf.trigger("o-1", start_at=Status.DONE)
    _nothing_stored(wf, "o-1")


def test_trigger_at_a_status_outside_the_graph_is_refused(build, linear):
    """start_at a status the graph does not have raises UnknownStatus and stores nothing."""
    wf = build(linear())
    with pytest.raises(af.UnknownStatus):
        wf.trigger("o-1", start_at=Status.UNUSED)
    _nothing_stored(wf, "o-1")


def test_trigger_while_a_run_is_unfinished_raises_workflow_in_progress(build, linear):
    """A second trigger for a foreign id whose run has not finished raises WorkflowInProgress."""
    wf = build(linear())
    first = wf.trigger("o-1")
    with pytest.raises(af.WorkflowInProgress):
        wf.trigger("o-1")
    assert wf.record_store.latest(wf.name, "o-1").run_id == first


def test_a_paused_run_blocks_a_new_trigger(build, linear):
    """A paused run is unfinished: WorkflowInProgress."""
    wf = build(linear())
    run_id = wf.trigger("o-1")
    wf.pause(run_id, "hold")
    with pytest.raises(af.WorkflowInProgress):
        wf.trigger("o-1")


def test_a_new_run_is_allowed_after_cancellation(build, linear):
    """A cancelled run is finished: the foreign id may start a new run, which becomes the latest."""
    wf = build(linear())
    old = wf.trigger("o-1")
    wf.pause(old, "hold")
    wf.cancel(old, "start over")
    new = wf.trigger("o-1")
    assert new != old
    assert wf.record_store.latest(wf.name, "o-1").run_id == new


def test_a_new_run_is_allowed_after_completion(start, linear):
    """Once a run completes, the same foreign id can be triggered again."""
    wf = start(linear())
    first = wf.trigger("o-1")
    wf.await_status("o-1", first, Status.DONE, timeout=5)
    second = wf.trigger("o-1")
    wf.await_status("o-1", second, Status.DONE, timeout=5)
    assert second != first


def test_trigger_works_on_an_instance_that_never_ran(build_shared, linear):
    """A service instance only triggers; another instance on the same adapters runs the steps."""
    calls = Calls()
    service, node = build_shared(linear(calls), 2)
    node.run()
    run_id = service.trigger("o-1", Order(id="o-1"))
    run = service.await_status("o-1", run_id, Status.DONE, timeout=5)
    assert run.object.amount == 3
    assert calls.count("charge", run_id) == 1
    assert service.states() == {}


def test_concurrent_triggers_for_one_foreign_id_start_exactly_one_run(build, linear):
    """Of many threads triggering the same foreign id at once, exactly one succeeds."""
    wf = build(linear())
    barrier = threading.Barrier(8)
    results: list[str | BaseException] = []
    lock = threading.Lock()

    def trigger() -> None:
        barrier.wait()
        try:
            outcome: str | BaseException = wf.trigger("o-1")
        except af.ActorflowError as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=trigger) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    run_ids = [r for r in results if isinstance(r, str)]
    assert len(results) == 8
    assert len(run_ids) == 1
    assert all(isinstance(r, af.WorkflowInProgress) for r in results if not isinstance(r, str))
    assert [r.run_id for r in wf.record_store.list(wf.name, filter=af.RecordFilter(foreign_ids=("o-1",)))] == run_ids
