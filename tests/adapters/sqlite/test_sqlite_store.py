"""SqliteRecordStore beyond the conformance suite: concurrency, direct publishing, durability, bad rows."""

from __future__ import annotations

import dataclasses
import enum
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRoleScheduler
from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore
from actorflow.event import event_headers
from actorflow.testing import wait_for
from actorflow.testing.adaptertest._records import dummy_record, next_version


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


def _race(workers: list[Callable[[], None]]) -> list[Exception | None]:
    barrier = threading.Barrier(len(workers))
    outcomes: list[Exception | None] = [None] * len(workers)

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=5)
            workers[i]()
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return outcomes


def _poll(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (polling the database) until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.01)


def _rows(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, params).fetchall()


# -- the version and unfinished-run rules across store instances ---------------------------------


def test_writers_on_separate_instances_of_one_file_store_a_version_once(db, opened):
    """Eight store instances on one file race to store version 2: one wins, the others conflict."""
    stores = [opened(SqliteRecordStore(db)) for _ in range(8)]
    v1 = dummy_record()
    stores[0].store(v1)
    candidates = [next_version(v1, obj=f'{{"writer": {i}}}'.encode()) for i in range(8)]

    outcomes = _race([lambda s=s, c=c: s.store(c) for s, c in zip(stores, candidates, strict=True)])

    assert sum(o is None for o in outcomes) == 1
    assert all(isinstance(o, af.VersionConflict) for o in outcomes if o is not None)
    assert [v for (v,) in _rows(db, "SELECT version FROM workflow_record_snapshots ORDER BY version")] == [1, 2]


def test_new_runs_on_separate_instances_leave_one_unfinished_run(db, opened):
    """Eight store instances start a run of one foreign id at once: exactly one is stored."""
    stores = [opened(SqliteRecordStore(db)) for _ in range(8)]
    outcomes = _race([lambda s=s: s.store(dummy_record()) for s in stores])

    assert sum(o is None for o in outcomes) == 1
    assert all(isinstance(o, af.WorkflowInProgress) for o in outcomes if o is not None)
    assert _rows(db, "SELECT count(*) FROM workflow_records") == [(1,)]


def test_store_many_applies_a_run_created_and_moved_in_one_batch(db, opened):
    """store_many([v1, v2, v3]) of one run commits all three versions, each with its snapshot."""
    store = opened(SqliteRecordStore(db))
    v1 = dummy_record()
    v2 = next_version(v1, status=2, run_state=af.RunState.RUNNING)
    v3 = next_version(v2, status=3, run_state=af.RunState.COMPLETED)
    assert store.store_many([v1, v2, v3]) == [None, None, None]
    assert [r.meta.version for r in store.snapshots(v1.run_id)] == [1, 2, 3]
    assert store.lookup(v1.run_id) == v3


def test_a_refused_record_in_store_many_leaves_no_row_behind(db, opened):
    """A Completed newcomer refused for a foreign id in progress writes no record, snapshot or outbox row."""
    store = opened(SqliteRecordStore(db))
    busy = dummy_record(foreign_id="busy")
    store.store(busy)
    finished_newcomer = dummy_record(foreign_id="busy", run_state=af.RunState.COMPLETED)
    ok = dummy_record(foreign_id="free")

    results = store.store_many([finished_newcomer, ok])

    assert isinstance(results[0], af.WorkflowInProgress)
    assert results[0].run_id == busy.run_id
    assert results[1] is None
    assert _rows(db, "SELECT count(*) FROM workflow_record_snapshots WHERE run_id = ?", finished_newcomer.run_id) == [
        (0,)
    ]
    assert len(store.list_outbox_events(busy.workflow_name, 10)) == 2


def test_times_are_stored_as_utc_microseconds_and_read_back_aware(db, opened):
    """created_at/updated_at are INTEGER microseconds since the epoch; lookups return UTC-aware times."""
    store = opened(SqliteRecordStore(db))
    record = dummy_record()
    store.store(record)
    ((created, kind),) = _rows(db, "SELECT created_at, typeof(created_at) FROM workflow_records")
    assert kind == "integer"
    assert created == int(record.created_at.timestamp() * 1_000_000)
    assert store.lookup(record.run_id).created_at.utcoffset().total_seconds() == 0


# -- direct publishing ----------------------------------------------------------------------------


def test_direct_publishing_writes_the_event_and_no_outbox_row(db, opened):
    """With a streamer on the same file, store() appends the event to the log in its own transaction."""
    store = opened(SqliteRecordStore(db))
    streamer = opened(SqliteEventStreamer(db))
    assert store.publish_directly("my_workflow", streamer)
    record = dummy_record()
    store.store(record)

    assert store.list_outbox_events("my_workflow", 10) == []
    receiver = streamer.new_receiver("my_workflow-1", "reader")
    (event,) = receiver.receive(10, 1.0)
    receiver.close()
    assert (event.run_id, event.type) == (record.run_id, 1)
    assert dict(event.headers) == event_headers(record)
    assert event.created_at == record.updated_at


@pytest.mark.parametrize("other", ["another file", "memory"])
def test_publish_directly_refuses_a_streamer_elsewhere(db, tmp_path, opened, other):
    """A streamer on another file, or not SQLite at all, gets outbox rows as usual."""
    store = opened(SqliteRecordStore(db))
    streamer = SqliteEventStreamer(tmp_path / "other.db") if other == "another file" else MemoryEventStreamer()
    assert not store.publish_directly("my_workflow", streamer)
    store.store(dummy_record())
    assert len(store.list_outbox_events("my_workflow", 10)) == 1


def test_publish_directly_compares_resolved_paths_and_opens_nothing(tmp_path):
    """A relative and an absolute path to one file match; deciding creates no file."""
    (tmp_path / "sub").mkdir()
    store = SqliteRecordStore(tmp_path / "sub" / ".." / "same.db")
    assert store.publish_directly("w", SqliteEventStreamer(tmp_path / "same.db"))
    assert not (tmp_path / "same.db").exists()


class Step(enum.IntEnum):
    STARTED = 1
    MIDDLE = 2
    DONE = 3


@dataclasses.dataclass
class Thing:
    n: int = 0


def _two_steps(name: str = "direct") -> af.Builder[Thing, Step]:
    b = af.Builder(name, Thing, Step)
    b.add_step(Step.STARTED, lambda run: Step.MIDDLE, Step.MIDDLE)
    b.add_step(Step.MIDDLE, lambda run: Step.DONE, Step.DONE)
    return b


def test_a_workflow_on_one_file_runs_without_an_outbox_relay(db, opened):
    """Store and streamer on one file: the workflow publishes directly, has no outbox-consumer, and runs."""
    store, streamer = opened(SqliteRecordStore(db)), opened(SqliteEventStreamer(db))
    wf = _two_steps().build(streamer, store, MemoryRoleScheduler())
    assert wf.publishes_directly
    supervisor = af.Supervisor([wf])
    supervisor.start()
    try:
        assert "direct/outbox-consumer" not in supervisor.states()
        run_id = wf.trigger("t-1")
        assert wf.await_status("t-1", run_id, Step.DONE, timeout=10).meta.version == 3
    finally:
        supervisor.stop()
    assert _rows(db, "SELECT count(*) FROM workflow_outbox") == [(0,)]


# -- durable error counts -----------------------------------------------------------------------------


def test_error_counts_survive_closing_and_reopening(db):
    """add_error counts continue after the store is closed and a new instance opens the file."""
    store = SqliteRecordStore(db)
    assert [store.add_error("step-1", "run-1") for _ in range(2)] == [1, 2]
    store.close()
    again = SqliteRecordStore(db)
    try:
        assert again.add_error("step-1", "run-1") == 3
        assert again.add_error("step-2", "run-1") == 1
        again.clear_errors("step-1", "run-1")
        assert again.add_error("step-1", "run-1") == 1
    finally:
        again.close()


def test_pause_after_err_count_holds_across_a_restart(db, opened):
    """An error counted by a node that then stops still counts: the next node pauses at the limit.

    The limit is 3 errors. The first node fails once and is stopped during its long back-off;
    the second node needs only two more failures (with counts in memory it would need three).
    """
    calls: list[str] = []

    def failing(run: af.Run[Thing, Step]) -> Step:
        calls.append(run.run_id)
        raise RuntimeError("poisoned")

    def build(backoff: float) -> af.Workflow[Thing, Step]:
        """A node of its own: new adapter instances on the file, as a restarted process has."""
        b = af.Builder("poisoned", Thing, Step)
        b.add_step(Step.STARTED, failing, Step.DONE).with_options(pause_after_err_count=3, err_backoff=backoff)
        return b.build(opened(SqliteEventStreamer(db)), opened(SqliteRecordStore(db)), MemoryRoleScheduler())

    first = build(backoff=60.0)
    first.run()
    try:
        run_id = first.trigger("p-1")
        _poll(lambda: _rows(db, "SELECT count FROM workflow_error_counts WHERE run_id = ?", run_id) == [(1,)])
    finally:
        first.stop()

    second = build(backoff=0.01)
    second.run()
    try:
        wait_for(second, "p-1", lambda run: run.run_state is af.RunState.PAUSED, timeout=10)
    finally:
        second.stop()
    assert len(calls) == 3


# -- unreadable rows ----------------------------------------------------------------------------------


def test_a_corrupt_record_row_raises_corrupt_record_on_lookup(db, opened, caplog):
    """A foreign row (run_state 99) makes lookup/latest raise CorruptRecord; list leaves it out with a warning."""
    store = opened(SqliteRecordStore(db))
    good, bad = dummy_record(foreign_id="good"), dummy_record(foreign_id="bad")
    store.store(good)
    store.store(bad)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE workflow_records SET run_state = 99 WHERE run_id = ?", (bad.run_id,))

    with pytest.raises(af.CorruptRecord) as caught:
        store.lookup(bad.run_id)
    assert caught.value.run_id == bad.run_id
    with pytest.raises(af.CorruptRecord):
        store.latest(bad.workflow_name, "bad")
    with caplog.at_level(logging.WARNING, logger="actorflow.adapters.sqlite"):
        assert [r.run_id for r in store.list(good.workflow_name)] == [good.run_id]
    assert "unreadable record" in caplog.text
    assert store.lookup_many([good.run_id, bad.run_id]) == {good.run_id: good}


def test_a_corrupt_record_row_is_reported_by_a_running_workflow(db, opened, caplog):
    """The step consumer reports the unreadable runs and goes on with the runs behind it.

    One row is no record at all (run state 42): reported, counted as a corrupt record (not
    a malformed event: the `ActorflowCorruptRecords` alert sees it), its event skipped.
    Another's status (99) is no member of the workflow's enum, so no consumer would ever
    meet it again: reported, counted, and paused with the reason, its data kept as found.
    """
    store, streamer = opened(SqliteRecordStore(db)), opened(SqliteEventStreamer(db))
    wf = _two_steps("corrupt").build(streamer, store, MemoryRoleScheduler())
    bad, odd = wf.trigger("bad"), wf.trigger("odd")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE workflow_records SET object = 'not bytes', run_state = 42 WHERE run_id = ?", (bad,))
        conn.execute("UPDATE workflow_records SET status = 99 WHERE run_id = ?", (odd,))
    good = wf.trigger("good")
    labels = {"workflow_name": "corrupt", "process_name": "started-consumer-1-of-1"}
    before = wf.metrics.registry.get_sample_value("actorflow_corrupt_records_total", labels) or 0.0
    malformed_before = wf.metrics.registry.get_sample_value("actorflow_malformed_events_total", labels) or 0.0
    wf.run()
    try:
        assert wf.await_status("good", good, Step.DONE, timeout=10).meta.version == 3
        _poll(lambda: wf.metrics.registry.get_sample_value("actorflow_corrupt_records_total", labels) == before + 2)
    finally:
        wf.stop()
    assert _rows(db, "SELECT version, run_state FROM workflow_records WHERE run_id = ?", bad) == [(1, 42)]
    assert f"run {bad} cannot be read, event skipped" in caplog.text
    paused = store.lookup(odd)
    assert (paused.meta.version, paused.status, paused.run_state) == (2, 99, af.RunState.PAUSED)
    assert paused.meta.run_state_reason.startswith("stored run unreadable - automatically paused: ")
    assert f"the stored run {odd} cannot be read (version 1): status 99 is not a Step" in caplog.text
    assert wf.metrics.registry.get_sample_value("actorflow_corrupt_records_total", labels) == before + 2
    malformed = wf.metrics.registry.get_sample_value("actorflow_malformed_events_total", labels) or 0.0
    assert malformed == malformed_before  # the events were fine


def test_an_unreadable_outbox_row_is_dropped_and_the_rest_relayed(db, opened, caplog):
    """An outbox row that can never be relayed is logged and deleted, so it cannot hold up the rows behind it."""
    store = opened(SqliteRecordStore(db))
    first, second = dummy_record(foreign_id="first"), dummy_record(foreign_id="second")
    store.store(first)
    store.store(second)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE workflow_outbox SET headers = 'garbage' WHERE run_id = ?", (first.run_id,))

    with caplog.at_level(logging.ERROR, logger="actorflow.adapters.sqlite"):
        assert [e.run_id for e in store.list_outbox_events(first.workflow_name, 10)] == [second.run_id]
    assert "dropped unreadable outbox event" in caplog.text
    assert _rows(db, "SELECT run_id FROM workflow_outbox") == [(second.run_id,)]


def test_clearing_a_runs_error_counts_is_one_index_probe(db, opened):
    """The delete that comes with every stored version searches error_counts by its run_id index."""
    store = opened(SqliteRecordStore(db))
    store.list("w")  # migrated
    plan = _rows(db, "EXPLAIN QUERY PLAN " + store.db.queries["clear_run_errors"], "run")
    assert any(detail.startswith("SEARCH") and "INDEX workflow_error_counts_by_run" in detail for *_, detail in plan), (
        plan
    )
