"""SqliteEventStreamer beyond the conformance suite: wake-ups across instances, concurrent writers, bad rows."""

from __future__ import annotations

import dataclasses
import enum
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore
from actorflow.event import Event, Header, shard_of
from actorflow.protocols import ReceiverOptions
from actorflow.testing.adaptertest._records import dummy_record
from tests.retention_checks import assert_stopping_ends_a_running_cleanup


@dataclasses.dataclass
class _Nothing:
    pass


class _Two(enum.IntEnum):
    STARTED = 1
    DONE = 2


SLOW_POLL = ReceiverOptions(poll_frequency=30.0)  # polling cannot explain a quick return


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


def _collect(receiver: Any, count: int, timeout: float = 10.0) -> list[Event]:
    out: list[Event] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        out.extend(receiver.receive(count - len(out), deadline - time.monotonic()))
    return out


def _timed_receive(receiver: Any, write: Callable[[], None], delay: float = 0.2) -> tuple[list[Event], float]:
    """receive() while ``write`` runs in another thread after ``delay``; the events and the seconds taken."""
    timer = threading.Timer(delay, write)
    started = time.monotonic()
    timer.start()
    try:
        events = list(receiver.receive(10, 5.0))
        return events, time.monotonic() - started
    finally:
        timer.join(timeout=10)


def test_a_direct_write_by_a_record_store_instance_wakes_a_receiver_at_once(db, opened):
    """A store and a streamer opened separately on one file: the store's commit wakes the blocked receive."""
    store = opened(SqliteRecordStore(db))
    streamer = opened(SqliteEventStreamer(db))
    assert store.publish_directly("my_workflow", opened(SqliteEventStreamer(db)))
    receiver = opened(streamer.new_receiver("my_workflow-1", "reader", SLOW_POLL))
    assert receiver.receive(10, 0.01) == []  # connected

    record = dummy_record()
    events, elapsed = _timed_receive(receiver, lambda: store.store(record))

    assert [e.run_id for e in events] == [record.run_id]
    assert elapsed < 1.0, f"receive took {elapsed:.2f}s after a write at 0.2s"


def test_a_sender_of_another_instance_wakes_a_receiver_at_once(db, opened):
    """Two streamer instances on one file share the file's in-process wake-up."""
    reader, writer = opened(SqliteEventStreamer(db)), opened(SqliteEventStreamer(db))
    receiver = opened(reader.new_receiver("topic", "reader", SLOW_POLL))
    sender = opened(writer.new_sender("topic"))

    def send() -> None:
        sender.send("run-1", 1, {})
        sender.flush()

    events, elapsed = _timed_receive(receiver, send)
    assert [e.run_id for e in events] == ["run-1"]
    assert elapsed < 1.0


def test_a_write_by_another_process_is_found_by_polling(db, opened):
    """Another process cannot wake this one: its event is found within the receiver's poll frequency."""
    streamer = opened(SqliteEventStreamer(db))
    receiver = opened(streamer.new_receiver("topic", "reader", ReceiverOptions(poll_frequency=0.1)))
    assert receiver.receive(10, 0.01) == []
    code = (
        "import sys\nfrom actorflow.adapters.sqlite import SqliteEventStreamer\n"
        "s = SqliteEventStreamer(sys.argv[1]); x = s.new_sender('topic'); x.send('far', 1, {}); x.close(); s.close()\n"
    )
    subprocess.run([sys.executable, "-c", code, str(db)], check=True, timeout=60)
    started = time.monotonic()
    events = receiver.receive(10, 5.0)
    assert [e.run_id for e in events] == ["far"]
    assert time.monotonic() - started < 1.0


def test_concurrent_writers_lose_and_duplicate_no_event(db, opened):
    """Eight threads commit 1,600 events while a reader reads: each arrives once, in id order, per writer in order."""
    streamer = opened(SqliteEventStreamer(db))
    receiver = opened(streamer.new_receiver("busy", "reader", ReceiverOptions(poll_frequency=0.05)))
    writers, per_writer = 8, 200
    start = threading.Barrier(writers + 1)

    def write(w: int) -> None:
        sender = streamer.new_sender("busy")
        start.wait(timeout=10)
        for i in range(per_writer):
            sender.send(f"w{w}", i, {Header.TOPIC: "busy"})
            if i % (1 + w % 3) == 0:  # flush sizes differ between writers: 1, 2 or 3 events
                sender.flush()
        sender.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    start.wait(timeout=10)
    got = _collect(receiver, writers * per_writer, timeout=60)
    for t in threads:
        t.join(timeout=30)

    assert len(got) == writers * per_writer
    ids = [e.id for e in got]
    assert ids == sorted(set(ids)), "every event once, in id order"
    for w in range(writers):
        assert [e.type for e in got if e.run_id == f"w{w}"] == list(range(per_writer))
    assert receiver.receive(10, 0.05) == []


def test_a_sender_writes_nothing_before_flush(db, opened):
    """Sends are buffered: a receiver sees them only after flush() (one transaction for all)."""
    streamer = opened(SqliteEventStreamer(db))
    receiver = opened(streamer.new_receiver("buffered", "reader"))
    sender = opened(streamer.new_sender("buffered"))
    sender.send("a", 1, {})
    sender.send("b", 1, {})
    assert receiver.receive(10, 0.05) == []
    sender.flush()
    assert [e.run_id for e in _collect(receiver, 2)] == ["a", "b"]


def test_a_shard_receives_only_its_own_share(db, opened):
    """The shard filter runs in SQL: shard i of n gets exactly the events with shard_of(run_id, n) == i."""
    streamer = opened(SqliteEventStreamer(db))
    sender = opened(streamer.new_sender("sharded"))
    run_ids = [f"run-{i}" for i in range(60)]
    for run_id in run_ids:
        sender.send(run_id, 1, {})
    sender.flush()
    for shard in range(3):
        options = ReceiverOptions(shard=shard, shard_count=3)
        receiver = opened(streamer.new_receiver("sharded", f"shard-{shard}", options))
        want = [r for r in run_ids if shard_of(r, 3) == shard]
        assert [e.run_id for e in _collect(receiver, len(want))] == want
        assert receiver.receive(100, 0.05) == []


def test_closing_a_receiver_wakes_a_receive_blocked_in_another_thread(db, opened):
    """close() makes a blocked receive() return at once, with nothing."""
    streamer = opened(SqliteEventStreamer(db))
    receiver = streamer.new_receiver("quiet", "reader", SLOW_POLL)
    receiver.receive(1, 0.01)
    events, elapsed = _timed_receive(receiver, receiver.close)
    assert events == []
    assert elapsed < 1.0


def _insert_bad_rows(db: Path, topic: str) -> None:
    """Rows no sender would write: headers not JSON, a text type, headers not strings, a text time."""
    now = int(time.time() * 1_000_000)  # recent: the streamer's retention must not take them
    with sqlite3.connect(db) as conn:
        for headers, event_type, created_at in (
            ("not json", 1, now),
            ("{}", "one", now),
            ('{"k": 1}', 1, now),
            ("{}", 1, "x"),
        ):
            conn.execute(
                "INSERT INTO workflow_events (topic, run_id, type, headers, created_at, shard_hash) VALUES (?, 'bad', ?, ?, ?, 0)",
                (topic, event_type, headers, created_at),
            )


def test_unreadable_event_rows_are_handed_over_as_malformed_events(db, opened):
    """Rows with bad headers, type or time come out in order as malformed events; acking past them holds."""
    streamer = opened(SqliteEventStreamer(db))
    sender = opened(streamer.new_sender("mixed"))
    sender.send("good-1", 1, {})
    sender.flush()
    _insert_bad_rows(db, "mixed")
    sender.send("good-2", 1, {})
    sender.flush()

    receiver = streamer.new_receiver("mixed", "reader")
    got = _collect(receiver, 6)
    assert [e.run_id for e in got] == ["good-1", "bad", "bad", "bad", "bad", "good-2"]
    assert [bool(e.malformed) for e in got] == [False, True, True, True, True, False]
    assert all("unreadable row" in e.malformed and e.created_at.tzinfo is not None for e in got[1:5])
    receiver.ack(got[-1])
    receiver.close()
    again = opened(streamer.new_receiver("mixed", "reader"))
    assert again.receive(10, 0.05) == []


def test_a_running_consumer_counts_unreadable_events_and_goes_on(db, opened):
    """A step consumer reports unreadable rows of its topic, counts them, and handles the runs behind them."""
    store, streamer = opened(SqliteRecordStore(db)), opened(SqliteEventStreamer(db))
    b = af.Builder("tolerant", _Nothing, _Two)
    b.add_step(_Two.STARTED, lambda run: _Two.DONE, _Two.DONE)
    wf = b.build(streamer, store, MemoryRoleScheduler())
    store.list("tolerant")  # creates the tables
    _insert_bad_rows(db, "tolerant-1")
    run_id = wf.trigger("after-the-bad-rows")
    supervisor = af.Supervisor([wf], registry=CollectorRegistry())
    supervisor.start()
    try:
        assert wf.await_status("after-the-bad-rows", run_id, _Two.DONE, timeout=10).meta.version == 2
        labels = {"workflow_name": "tolerant", "process_name": "started-consumer-1-of-1"}
        malformed = supervisor.registry.get_sample_value("actorflow_malformed_events_total", labels)
    finally:
        supervisor.stop()
    assert malformed == 4


def test_stream_from_latest_stores_the_cursor_at_the_head(db, opened):
    """A new name with stream_from_latest starts after the head, durably: a later receiver resumes there."""
    streamer = opened(SqliteEventStreamer(db))
    sender = opened(streamer.new_sender("latest"))
    sender.send("old", 1, {})
    sender.flush()
    opened(streamer.new_receiver("latest", "late", ReceiverOptions(stream_from_latest=True)))
    sender.send("new", 1, {})
    sender.flush()
    resumed = opened(opened(SqliteEventStreamer(db)).new_receiver("latest", "late"))
    assert [e.run_id for e in _collect(resumed, 1)] == ["new"]


# -- retention ----------------------------------------------------------------------------------------


def _event_count(db: Path, where: str = "1") -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM workflow_events WHERE {where}").fetchone()[0])  # noqa: S608


def test_retention_defaults_to_seven_days_and_can_be_turned_off(db, opened):
    """Like PostgreSQL's: events older than a week are deleted unless retention=None."""
    assert opened(SqliteEventStreamer(db)).retention == timedelta(days=7).total_seconds()
    assert opened(SqliteEventStreamer(db, retention=None)).retention is None
    assert opened(SqliteEventStreamer(db, retention=60)).retention == 60.0
    with pytest.raises(ValueError, match="retention"):
        SqliteEventStreamer(db, retention=0)


def test_cleanup_deletes_old_events_in_bounded_batches(db, opened):
    """Each delete takes at most a batch of the oldest events; cleanup() goes on until none is old."""
    clock = af.FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
    streamer = opened(SqliteEventStreamer(db, clock=clock, retention=timedelta(days=1)))
    sender = opened(streamer.new_sender("topic"))
    for i in range(5):
        sender.send(f"old-{i}", 1, {})
    sender.flush()  # its first poke starts a background clean-up: let it end first
    streamer.retention_job.join(5.0)
    clock.advance(timedelta(days=2))
    sender.send("new", 1, {})
    sender.flush()
    assert streamer.retention_job.delete_batch(clock.now() - timedelta(days=1), 2) == 2
    assert _event_count(db) == 4
    streamer.retention_job.batch = 2
    assert streamer.cleanup() == 3
    assert _event_count(db) == 1
    assert opened(SqliteEventStreamer(db, retention=None)).cleanup() == 0


def test_retention_runs_in_the_background_while_receivers_are_busy(db, opened):
    """A receiver that always has events (never idle) still gets old events deleted, by another thread."""
    clock = af.FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
    streamer = opened(SqliteEventStreamer(db, clock=clock, retention=timedelta(days=1)))
    streamer.retention_job.every = 0.05
    sender = opened(streamer.new_sender("busy"))
    for i in range(20):
        sender.send(f"old-{i}", 1, {})
    sender.flush()
    clock.advance(timedelta(days=2))
    receiver = opened(streamer.new_receiver("busy", "reader"))
    deleted_by: set[str] = set()
    original = streamer.retention_job.delete_batch

    def delete(cutoff: datetime, limit: int) -> int:
        deleted_by.add(threading.current_thread().name)
        return original(cutoff, limit)

    streamer.retention_job.delete_batch = delete
    deadline = time.monotonic() + 15
    while _event_count(db, "run_id LIKE 'old-%'"):
        assert time.monotonic() < deadline, "the old events were not deleted"
        sender.send("new", 1, {})
        sender.flush()
        got = receiver.receive(1, 5)  # one at a time: never comes back empty
        assert got
        receiver.ack(got[-1])
    assert deleted_by and threading.current_thread().name not in deleted_by


def test_cleanup_finds_old_events_behind_younger_ones(db, opened):
    """Events stamped by clocks that disagree (another process's, a clock set back): the old ones are still deleted."""
    clock = af.FakeClock(datetime(2030, 1, 3, tzinfo=UTC))
    streamer = opened(SqliteEventStreamer(db, clock=clock, retention=timedelta(days=1)))
    sender = opened(streamer.new_sender("skewed"))
    sender.send("young-first", 1, {})  # the oldest ids, but stamped now
    sender.send("young-second", 1, {})
    sender.flush()  # its first poke starts a background clean-up: let it end before the old events arrive
    streamer.retention_job.join(5.0)
    with sqlite3.connect(db) as conn:  # later ids, stamped two days earlier by another clock
        conn.executemany(
            "INSERT INTO workflow_events (topic, run_id, type, headers, created_at, shard_hash) VALUES (?, ?, 1, '{}', ?, 0)",
            [("skewed", f"old-{i}", int(datetime(2030, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)) for i in range(3)],
        )
    streamer.retention_job.batch = 2
    assert streamer.cleanup() == 3
    assert _event_count(db) == 2


def test_a_supervisor_stop_ends_a_running_cleanup(db, opened):
    """detach() (Supervisor.stop) stops the clean-up thread after its batch, so no thread outlives the node."""
    streamer = opened(SqliteEventStreamer(db, retention=timedelta(days=1)))
    assert_stopping_ends_a_running_cleanup(streamer, streamer.detach)
