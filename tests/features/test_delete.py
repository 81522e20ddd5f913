"""Data deletion: a finished run's object is replaced, and the run marked DATA_DELETED."""

from __future__ import annotations

import json

import pytest

import actorflow as af
from tests.model import Order, Status


def _one_step() -> af.Builder[Order, Status]:
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    return b


def _completed(wf: af.Workflow[Order, Status]) -> str:
    run_id = wf.trigger("o-1", Order(id="o-1", amount=42, notes=["card 4242"]))
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    return run_id


def test_delete_data_requests_deletion(start):
    """delete_data on a completed run stores REQUESTED_DATA_DELETED with the reason."""
    wf = start(_one_step())
    run_id = _completed(wf)
    record = wf.delete_data(run_id, "gdpr request")
    assert record.run_state is af.RunState.REQUESTED_DATA_DELETED
    assert record.meta.run_state_reason == "gdpr request"


def test_deleted_data_is_replaced_by_the_default_placeholder(start, poll_until, run_state_of):
    """The delete process replaces the object with {"result":"deleted"} and marks the run DATA_DELETED."""
    wf = start(_one_step())
    run_id = _completed(wf)
    wf.delete_data(run_id, "gdpr request")
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.DATA_DELETED, what="the deletion")
    record = wf.record_store.lookup(run_id)
    assert json.loads(record.object) == {"result": "deleted"}
    assert record.status == Status.DONE
    assert record.meta.version == 4  # trigger, done, requested, deleted


def test_custom_delete_decides_the_replacement(start, poll_until, run_state_of):
    """With custom_delete the replacement is the function's result for the old object."""
    wf = start(_one_step(), custom_delete=lambda order: Order(id=order.id, amount=0, notes=["redacted"]))
    run_id = _completed(wf)
    wf.delete_data(run_id, "gdpr request")
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.DATA_DELETED, what="the deletion")
    assert wf.codec.decode(wf.record_store.lookup(run_id).object) == Order(id="o-1", amount=0, notes=["redacted"])


def test_data_of_a_cancelled_run_can_be_deleted(build, poll_until, run_state_of):
    """Cancelled runs are finished, so their data can be deleted too."""
    wf = build(_one_step())
    run_id = wf.trigger("o-1", Order(id="o-1"))
    wf.pause(run_id, "hold")
    wf.cancel(run_id, "customer left")
    wf.delete_data(run_id, "gdpr request")
    wf.run()
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.DATA_DELETED, what="the deletion")


def test_delete_data_of_an_unfinished_run_is_refused(build):
    """An Initiated run's data cannot be deleted: InvalidRunStateTransition, nothing stored."""
    wf = build(_one_step())
    run_id = wf.trigger("o-1")
    before = wf.record_store.lookup(run_id)
    with pytest.raises(af.InvalidRunStateTransition):
        wf.delete_data(run_id, "too early")
    assert wf.record_store.lookup(run_id) == before
