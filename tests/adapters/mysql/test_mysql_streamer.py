"""The MySQL event log never skips an event that a concurrent writer commits late.

Event sequence numbers are reserved under one row's lock held to the commit (see
``adapters/mysql/streamer.py``), so a writer of higher numbers waits for the writer of
lower ones to commit: a reader at ``seq > cursor`` never sees a later event first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from actorflow.adapters._sql import event_row
from actorflow.adapters.mysql import MysqlEventStreamer
from actorflow.adapters.mysql._db import insert_events, to_db, transaction
from actorflow.clock import FakeClock
from actorflow.event import Event
from actorflow.protocols import ReceiverOptions
from actorflow.testing.adaptertest.eventstreamer import collect
from tests.adapters.mysql.conftest import connect_admin
from tests.waiting import eventually

pytestmark = pytest.mark.mysql

TOPIC = "orders-1"


@pytest.fixture
def streamer(mysql_dsn: str) -> Iterator[MysqlEventStreamer]:
    made = MysqlEventStreamer(mysql_dsn)
    yield made
    made.close()


def _lock_waits(mysql_dsn: str) -> int:
    """How many transactions of the server wait for a row lock now."""
    conn = connect_admin(mysql_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_a_writer_of_a_lower_sequence_that_commits_late_is_never_skipped(
    streamer: MysqlEventStreamer, mysql_dsn: str
) -> None:
    """A reserves the lower numbers and stalls before its commit; B, sending meanwhile, cannot commit first."""
    receiver = streamer.new_receiver(TOPIC, "reader")
    assert list(receiver.receive(10, 0.05)) == []
    reserved = threading.Event()
    release = threading.Event()

    def stalled_writer(conn: Any) -> None:
        with transaction(conn) as cur:
            insert_events(cur, [event_row(TOPIC, "run-a", 1, {}, to_db(datetime.now(UTC)))])
            reserved.set()
            assert release.wait(10), "the test never released the stalled writer"

    errors: list[BaseException] = []

    def run(fn: Callable[[], object]) -> threading.Thread:
        def target() -> None:
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=target, name="test-writer")
        thread.start()
        return thread

    writer_a = run(lambda: streamer.db.run("stalled writer", stalled_writer, resend=False))
    assert reserved.wait(5)
    sender = streamer.new_sender(TOPIC)
    sender.send("run-b", 2, {})
    writer_b = run(sender.flush)
    try:
        eventually(lambda: _lock_waits(mysql_dsn) >= 1, what="B waiting on the sequence row")
        # Neither is visible: A has not committed, and B cannot commit before A.
        assert list(receiver.receive(10, 0.2)) == []
    finally:
        release.set()
        writer_a.join(10)
        writer_b.join(10)
    assert not errors, errors
    events = collect(receiver, 2)
    assert [e.run_id for e in events] == ["run-a", "run-b"]
    assert events[0].id < events[1].id
    receiver.close()


def test_concurrent_writers_and_a_concurrent_reader_lose_nothing(streamer: MysqlEventStreamer) -> None:
    """Writers racing on many threads: the reader, reading all along, gets every event once, in sequence order."""
    writers, flushes, per_flush = 4, 25, 3
    expected = {f"w{w}-{f}-{i}" for w in range(writers) for f in range(flushes) for i in range(per_flush)}
    receiver = streamer.new_receiver(TOPIC, "reader", ReceiverOptions(poll_frequency=0.05))
    start = threading.Barrier(writers + 1)
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            sender = streamer.new_sender(TOPIC)
            start.wait(5)
            for f in range(flushes):
                for i in range(per_flush):
                    sender.send(f"w{w}-{f}-{i}", 1, {})
                sender.flush()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,), name=f"test-writer-{w}") for w in range(writers)]
    for thread in threads:
        thread.start()
    start.wait(5)
    got: list[Event] = []
    for _ in range(400):
        if len(got) >= len(expected):
            break
        got.extend(receiver.receive(50, 0.2))
    for thread in threads:
        thread.join(10)
    assert not errors, errors
    got.extend(receiver.receive(50, 0.2))  # nothing more may come
    ids = [e.id for e in got]
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids))
    assert {e.run_id for e in got} == expected
    assert len(got) == len(expected)
    receiver.close()


def test_a_receiver_is_woken_at_once_by_a_write_of_its_process(streamer: MysqlEventStreamer) -> None:
    """Long after its back-off reached the poll interval, a receiver wakes as soon as this process sends."""
    receiver = streamer.new_receiver(TOPIC, "reader", ReceiverOptions(poll_frequency=30.0))
    assert list(receiver.receive(1, 0.3)) == []  # backs off
    got: list[Event] = []
    done = threading.Event()

    def wait() -> None:
        got.extend(receiver.receive(1, 20.0))
        done.set()

    thread = threading.Thread(target=wait, name="test-receiver")
    thread.start()
    sender = streamer.new_sender(TOPIC)
    sender.send("run-1", 1, {})
    sender.flush()
    assert done.wait(5), "the receiver waited for its poll instead of being woken"
    thread.join(5)
    assert [e.run_id for e in got] == ["run-1"]
    receiver.close()


def test_retention_deletes_old_events_and_close_stops_its_thread(mysql_dsn: str) -> None:
    """Events past the retention (by their created_at) are deleted; the clean-up thread ends with the streamer."""
    clock = FakeClock(datetime(2024, 1, 1, tzinfo=UTC))
    streamer = MysqlEventStreamer(mysql_dsn, clock=clock, retention=timedelta(hours=1))
    try:
        sender = streamer.new_sender(TOPIC)
        sender.send("old", 1, {})
        sender.flush()
        streamer.retention_job.join(5)  # the first flush started a clean-up: let it end
        clock.advance(timedelta(hours=2))
        sender.send("new", 1, {})
        sender.flush()
        streamer.retention_job.join(5)
        assert streamer.cleanup() == 1  # the next background run is ten minutes away: this one deletes it
        receiver = streamer.new_receiver(TOPIC, "reader")
        assert [e.run_id for e in receiver.receive(10, 1.0)] == ["new"]
        receiver.close()
    finally:
        streamer.close()
