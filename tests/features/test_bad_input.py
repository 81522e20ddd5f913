"""Bad input gets a clear, typed error and changes nothing in the record store or its outbox."""

from __future__ import annotations

import dataclasses
import enum
import threading

import pytest

import actorflow as af
from tests.model import Order, Status, Unencodable


def _outbox(wf: af.Workflow[object, Status]) -> list[str]:
    """Ids of the workflow's outbox events (always none when the store publishes directly)."""
    return [event.id for event in wf.record_store.list_outbox_events(wf.name, 100)]


def _assert_nothing_stored(wf: af.Workflow[object, Status], foreign_id: str) -> None:
    with pytest.raises(af.RecordNotFound):
        wf.record_store.latest(wf.name, foreign_id)
    assert wf.record_store.list(wf.name) == []
    assert wf.record_store.list_outbox_events(wf.name, 10) == []


def test_an_unknown_status_is_refused(build, linear):
    """Triggering at a status outside the graph raises UnknownStatus and stores nothing."""
    wf = build(linear())
    with pytest.raises(af.UnknownStatus):
        wf.trigger("o-1", start_at=Status.UNUSED)
    _assert_nothing_stored(wf, "o-1")


def test_a_transition_not_in_the_graph_is_refused(build, linear):
    """Starting at a terminal status (no transition out) raises InvalidTransition and stores nothing."""
    wf = build(linear())
    with pytest.raises(af.InvalidTransition):
        wf.trigger("o-1", start_at=Status.DONE)
    _assert_nothing_stored(wf, "o-1")


def test_a_callback_transition_not_in_the_graph_is_refused(build):
    """A callback moving a run along an edge the graph lacks raises StepError; the run is unchanged."""
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.AWAITING, Status.AWAITING)
    b.add_callback(Status.AWAITING, lambda run, payload: Status.EXPIRED, Status.APPROVED)
    wf = build(b)
    run_id = wf.trigger("o-1", start_at=Status.AWAITING)
    outbox = _outbox(wf)
    with pytest.raises(af.StepError):
        wf.callback("o-1", Status.AWAITING, b"{}")
    assert [r.meta.version for r in wf.record_store.list(wf.name)] == [1]
    assert _outbox(wf) == outbox
    assert wf.record_store.lookup(run_id).status == Status.AWAITING


def test_a_duplicate_step_is_refused_at_add_step(start):
    """A second add_step for a status raises BuildError (a ValueError) at that call; the first stays."""
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    with pytest.raises(af.BuildError) as caught:
        b.add_step(Status.STARTED, lambda run: Status.CHARGED, Status.CHARGED)
    assert isinstance(caught.value, ValueError)
    wf = start(b)
    run_id = wf.trigger("o-1")
    assert wf.await_status("o-1", run_id, Status.DONE, timeout=5).meta.version == 2


def test_a_duplicate_step_by_decorator_is_refused():
    """The decorator form refuses a second step for a status the same way."""
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    with pytest.raises(af.BuildError):

        @b.step(Status.STARTED, Status.DONE)
        def again(run: af.Run[Order, Status]) -> Status:
            return Status.DONE


def test_a_reserved_status_value_is_refused():
    """An enum using 0 (reserved for skip) is refused when the builder is made."""

    class Reserved(enum.IntEnum):
        NOTHING = 0
        STARTED = 1
        DONE = 2

    with pytest.raises(af.BuildError, match="reserved"):
        af.Builder("orders", Order, Reserved)


def test_an_object_holding_a_set_of_objects_is_refused(build):
    """An initial value JSON cannot encode raises CodecError (a ValueError) and stores nothing."""
    b = af.Builder("things", Unencodable, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    wf = build(b)
    with pytest.raises(af.CodecError) as caught:
        wf.trigger("t-1", Unencodable(id="t-1", things={object()}))
    assert isinstance(caught.value, ValueError)
    _assert_nothing_stored(wf, "t-1")


@dataclasses.dataclass
class WithLock:
    id: str = ""
    lock: object = None


def test_an_object_with_a_non_json_field_is_refused(build):
    """A field JSON cannot hold (a lock) raises CodecError and stores nothing."""
    b = af.Builder("locks", WithLock, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    wf = build(b)
    with pytest.raises(af.CodecError):
        wf.trigger("l-1", WithLock(id="l-1", lock=threading.Lock()))
    _assert_nothing_stored(wf, "l-1")


def test_a_foreign_id_with_a_run_in_progress_is_refused(build, linear):
    """WorkflowInProgress; only the first run is stored, and no event is added."""
    wf = build(linear())
    first = wf.trigger("o-1")
    outbox = _outbox(wf)
    with pytest.raises(af.WorkflowInProgress):
        wf.trigger("o-1", Order(id="second"))
    assert [r.run_id for r in wf.record_store.list(wf.name)] == [first]
    assert _outbox(wf) == outbox


def test_resuming_a_deleted_run_is_refused(start, linear, poll_until, run_state_of):
    """A run whose data was deleted cannot be resumed: InvalidRunStateTransition, nothing stored."""
    wf = start(linear())
    run_id = wf.trigger("o-1")
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)
    wf.delete_data(run_id, "gdpr request")
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.DATA_DELETED, what="the deletion")
    before = wf.record_store.lookup(run_id)
    with pytest.raises(af.InvalidRunStateTransition):
        wf.resume(run_id)
    assert wf.record_store.lookup(run_id) == before


def test_a_status_of_another_enum_is_refused_at_add_step():
    """Steps must use the builder's status enum: another enum's member raises BuildError."""

    class Other(enum.IntEnum):
        STARTED = 1

    b = af.Builder("orders", Order, Status)
    with pytest.raises(af.BuildError):
        b.add_step(Other.STARTED, lambda run: Status.DONE, Status.DONE)
