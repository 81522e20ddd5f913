"""Trigger: start a run for a foreign id, at the default or a chosen status, one unfinished at a time."""

from __future__ import annotations

import threading
import uuid

import pytest

import actorflow as af
from tests.model import T0, Calls, Order, Status
from tests.waiting import eventually


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


def _spy_store_many(
    monkeypatch: pytest.MonkeyPatch, wf: af.Workflow[Order, Status], hold: threading.Event | None = None
):
    """The record batches ``wf``'s store commits from now on; the first waits for ``hold`` when given."""
    store = wf.record_store
    original = store.store_many
    batches: list[list[str]] = []
    lock = threading.Lock()

    def store_many(records, **options):
        records = list(records)
        with lock:
            first = not batches
            batches.append([r.foreign_id for r in records])
        if first and hold is not None:
            assert hold.wait(10), "the test never released the first commit"
        return original(records, **options)

    monkeypatch.setattr(store, "store_many", store_many)
    return batches


def test_trigger_many_starts_every_run_in_one_commit(start, linear, monkeypatch):
    """Run ids in the items' order, one store_many for all of them, and every run goes through."""
    wf = start(linear())
    batches = _spy_store_many(monkeypatch, wf)
    items = [f"o-{i}" for i in range(5)] + [("o-5", Order(id="o-5", amount=7))]
    run_ids = wf.trigger_many(items)
    assert batches[0] == [f"o-{i}" for i in range(6)]
    assert [wf.record_store.lookup(r).foreign_id for r in run_ids] == [f"o-{i}" for i in range(6)]
    assert wf.await_status("o-5", run_ids[5], Status.DONE, timeout=10).object.amount == 7 + 3  # one per step
    for i, run_id in enumerate(run_ids[:5]):
        wf.await_status(f"o-{i}", run_id, Status.DONE, timeout=10)


def test_trigger_many_stores_nothing_when_an_item_does_not_encode(build):
    """An object that does not encode, anywhere in the items: CodecError, no run started."""
    from tests.model import Unencodable

    b = af.Builder("unenc", Unencodable, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    wf = build(b)
    with pytest.raises(af.CodecError):
        wf.trigger_many(["a", ("b", Unencodable(id="b", things={object()})), "c"])
    for fid in "abc":
        with pytest.raises(af.RecordNotFound):
            wf.record_store.latest(wf.name, fid)


def test_trigger_many_refuses_a_foreign_id_in_progress_alone(build, linear):
    """One item's foreign id has a run in progress: it is refused, the others start, and the error names both."""
    wf = build(linear())
    busy = wf.trigger("busy")
    with pytest.raises(af.WorkflowInProgress) as caught:
        wf.trigger_many(["a", "busy", "b"])
    assert caught.value.foreign_ids == ["busy"]
    assert [wf.record_store.lookup(r).foreign_id for r in caught.value.run_ids] == ["a", "b"]
    assert wf.record_store.latest(wf.name, "busy").run_id == busy


def test_triggers_from_many_threads_share_a_commit(build, linear, monkeypatch):
    """While one trigger's commit is in progress, the triggers of other threads queue and then commit together."""
    wf = build(linear())
    hold = threading.Event()
    batches = _spy_store_many(monkeypatch, wf, hold)
    results: dict[str, str] = {}
    lock = threading.Lock()

    def trigger(fid: str) -> None:
        run_id = wf.trigger(fid)
        with lock:
            results[fid] = run_id

    first = threading.Thread(target=trigger, args=("first",))
    first.start()
    eventually(lambda: len(batches) == 1, what="the first trigger's commit in progress")
    others = [threading.Thread(target=trigger, args=(f"o-{i}",)) for i in range(6)]
    for t in others:
        t.start()
    eventually(lambda: wf.engine.writer.waiting == 6, what="six triggers queued behind it")
    hold.set()
    for t in [first, *others]:
        t.join(10)
    assert batches[0] == ["first"]
    assert sorted(batches[1]) == [f"o-{i}" for i in range(6)]
    assert len(batches) == 2
    assert {wf.record_store.lookup(r).foreign_id for r in results.values()} == {"first"} | {f"o-{i}" for i in range(6)}
