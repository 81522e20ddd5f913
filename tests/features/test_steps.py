"""Steps move a run through its statuses: what is stored at each write, and what a step sees."""

from __future__ import annotations

import json
from datetime import timedelta

import actorflow as af
from tests.model import T0, Calls, Order, Status


def test_steps_move_a_run_to_its_terminal_status(start, linear):
    """Three steps take a run from STARTED to DONE, with every step's change to the object."""
    wf = start(linear())
    run_id = wf.trigger("o-1", Order(id="o-1"))
    run = wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    assert run.status is Status.DONE
    assert run.object == Order(id="o-1", amount=3, notes=["charge", "ship", "finish"])


def test_version_is_one_plus_the_number_of_writes(start, linear):
    """The trigger stores version 1 and each of three steps adds 1: the run ends at version 4."""
    wf = start(linear())
    run_id = wf.trigger("o-1")
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    path = [Status.STARTED, Status.CHARGED, Status.SHIPPED, Status.DONE]
    versions = [wf.await_status("o-1", run_id, status, timeout=5).meta.version for status in path]
    assert versions == [1, 2, 3, 4]
    assert wf.record_store.lookup(run_id).meta.version == 4


def test_a_run_at_a_terminal_status_is_completed(start, linear):
    """Reaching a status with no way out sets the run state to COMPLETED (RUNNING before)."""
    wf = start(linear())
    run_id = wf.trigger("o-1")
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    assert wf.record_store.lookup(run_id).run_state is af.RunState.COMPLETED
    assert wf.await_status("o-1", run_id, Status.SHIPPED, timeout=5).run_state is af.RunState.RUNNING


def test_updated_at_comes_from_the_workflow_clock(start, clock):
    """Each write stamps ``updated_at`` with the workflow's clock at the write; ``created_at`` stays."""
    b = af.Builder("orders", Order, Status)

    def charge(run: af.Run[Order, Status]) -> Status:
        clock.advance(timedelta(minutes=5))
        return Status.DONE

    b.add_step(Status.STARTED, charge, Status.DONE)
    wf = start(b)
    run_id = wf.trigger("o-1")
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    record = wf.record_store.lookup(run_id)
    assert record.created_at == T0
    assert record.updated_at == T0 + timedelta(minutes=5)


def test_a_step_receives_the_typed_run(start):
    """A step gets an af.Run: the user's enum as status, the decoded object, and every record field."""
    seen: list[af.Run[Order, Status]] = []
    b = af.Builder("orders", Order, Status)

    def charge(run: af.Run[Order, Status]) -> Status:
        seen.append(run)
        return Status.DONE

    b.add_step(Status.STARTED, charge, Status.DONE)
    wf = start(b)
    run_id = wf.trigger("o-1", Order(id="o-1", amount=7))
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    (run,) = seen
    assert isinstance(run, af.Run)
    assert isinstance(run, af.TypedRecord)
    assert run.status is Status.STARTED
    assert run.object == Order(id="o-1", amount=7)
    assert (run.workflow_name, run.foreign_id, run.run_id) == ("orders", "o-1", run_id)
    assert run.run_state is af.RunState.RUNNING  # an Initiated run is seen as Running
    assert run.created_at == T0
    assert run.updated_at == T0
    assert isinstance(run.meta, af.RecordMeta)
    assert run.meta.version == 1


def test_the_stored_record_holds_the_object_as_json_bytes(start, linear):
    """The record store keeps an af.Record: the object as UTF-8 JSON bytes, the status as an int."""
    wf = start(linear())
    run_id = wf.trigger("o-1", Order(id="o-1"))
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    record = wf.record_store.lookup(run_id)
    assert isinstance(record, af.Record)
    assert isinstance(record.object, bytes)
    assert json.loads(record.object) == {"id": "o-1", "amount": 3, "notes": ["charge", "ship", "finish"]}
    assert record.status == int(Status.DONE)
    assert (record.workflow_name, record.foreign_id, record.run_id) == ("orders", "o-1", run_id)
    assert record.meta.status_description == "Done"
    assert record.meta.run_state_reason == ""


def test_await_returns_the_run_with_the_users_status_enum(start, linear):
    """What await_status returns is an af.Run whose status is the user's enum and object decoded."""
    wf = start(linear())
    run_id = wf.trigger("o-1", Order(id="o-1"))
    run = wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    assert isinstance(run, af.Run)
    assert type(run.status) is Status
    assert isinstance(run.object, Order)
    assert run.run_state is af.RunState.COMPLETED


def test_each_step_runs_once_per_run_when_nothing_fails(start, linear):
    """With no failure, each step function is called exactly once for the run."""
    calls = Calls()
    wf = start(linear(calls))
    run_id = wf.trigger("o-1")
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    assert [calls.count(label, run_id) for label in ("charge", "ship", "finish")] == [1, 1, 1]


def test_runs_of_different_foreign_ids_proceed_independently(start, linear):
    """Several foreign ids each get their own run, and each completes."""
    wf = start(linear())
    ids = {f"o-{i}": wf.trigger(f"o-{i}", Order(id=f"o-{i}")) for i in range(5)}
    for foreign_id, run_id in ids.items():
        assert wf.await_status(foreign_id, run_id, Status.DONE, timeout=5).object.id == foreign_id
