"""The PostgreSQL event log: visibility order, wake-ups, retention, bad rows."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from actorflow import Header, ReceiverOptions, shard_of
from actorflow.adapters.postgres import PostgresEventStreamer, migrate


@pytest.fixture
def streamer(pg_dsn: str, pg_schema: str):
    made = PostgresEventStreamer(pg_dsn, schema=pg_schema)
    yield made
    made.close()


def collect(receiver, count: int, timeout: float = 10.0) -> list:
    """Receive until ``count`` events came (other transactions on the server can delay them)."""
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got.extend(receiver.receive(count - len(got), 0.5))
    return got


def _raw(pg_dsn: str, schema: str) -> psycopg.Connection:
    return psycopg.connect(pg_dsn, options=f"-c search_path={schema}", autocommit=True)


def test_an_event_committed_late_is_not_skipped(streamer, pg_dsn, pg_schema):
    """A transaction that wrote first but commits last: its event is still delivered.

    The naive design (read ``id > cursor``) would deliver B (id 2), move the cursor
    past A's id 1, and never deliver A once it commits.
    """
    sender = streamer.new_sender("late")
    sender.send("warm-up", 1, {Header.TOPIC: "late"})
    sender.flush()  # creates the tables
    receiver = streamer.new_receiver("late", "reader")
    assert [e.run_id for e in collect(receiver, 1)] == ["warm-up"]
    with _raw(pg_dsn, pg_schema) as slow:
        with slow.transaction():
            slow.execute(
                "INSERT INTO workflow_events (topic, run_id, type, headers, created_at, shard_hash)"
                " VALUES ('late', 'A', 1, '{}', now(), 0)"
            )
            sender.send("B", 1, {Header.TOPIC: "late"})
            sender.flush()
            # B is committed, but A's transaction is older and still open: nothing yet.
            assert receiver.receive(10, 0.3) == []
        got = [e.run_id for e in collect(receiver, 2)]
    assert got == ["A", "B"]


def test_many_concurrent_writers_lose_no_event(streamer):
    """Threads commit events with random delays while a reader reads: each arrives once."""
    topic, writers, per_writer = "busy", 6, 40
    expected = {f"w{w}-{i}" for w in range(writers) for i in range(per_writer)}
    streamer.new_sender(topic).flush()

    def write(w: int) -> None:
        rng = random.Random(w)  # noqa: S311 - jitter, not security
        sender = streamer.new_sender(topic)
        for i in range(per_writer):
            sender.send(f"w{w}-{i}", 1, {Header.TOPIC: topic})
            if rng.random() < 0.5:
                sender.flush()
        sender.flush()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    receiver = streamer.new_receiver(topic, "reader")
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while len(seen) < len(expected) and time.monotonic() < deadline:
        batch = receiver.receive(50, 1)
        seen.extend(e.run_id for e in batch)
        if batch:
            receiver.ack(batch[-1])
    for t in threads:
        t.join()
    assert sorted(seen) == sorted(expected)


def test_a_shard_reads_only_its_share(streamer):
    sender = streamer.new_sender("sharded")
    ids = [f"run-{i}" for i in range(40)]
    for run_id in ids:
        sender.send(run_id, 1, {Header.TOPIC: "sharded"})
    sender.flush()
    for shard in range(3):
        receiver = streamer.new_receiver("sharded", f"s{shard}", ReceiverOptions(shard=shard, shard_count=3))
        want = [r for r in ids if shard_of(r, 3) == shard]
        got = [e.run_id for e in collect(receiver, len(want))]
        assert got == want


def test_a_waiting_receiver_wakes_on_notify(streamer):
    """receive() returns as soon as another thread commits, long before its timeout."""
    receiver = streamer.new_receiver("wake", "reader")
    assert receiver.receive(1, 0.2) == []

    def later() -> None:
        time.sleep(0.2)
        sender = streamer.new_sender("wake")
        sender.send("x", 1, {Header.TOPIC: "wake"})
        sender.flush()

    thread = threading.Thread(target=later)
    thread.start()
    started = time.monotonic()
    got = receiver.receive(1, 10)
    thread.join()
    assert [e.run_id for e in got] == ["x"]
    assert time.monotonic() - started < 3


def test_a_malformed_event_row_is_handed_over_as_malformed(streamer, pg_dsn, pg_schema):
    """An unreadable row neither crashes nor blocks the reader: it comes out marked malformed."""
    sender = streamer.new_sender("bad")
    sender.send("good-1", 1, {Header.TOPIC: "bad"})
    sender.flush()
    with _raw(pg_dsn, pg_schema) as conn:
        conn.execute(
            "INSERT INTO workflow_events (topic, run_id, type, headers, created_at, shard_hash)"
            " VALUES ('bad', 'garbage', 1, 'not json', now(), 0)"
        )
    sender.send("good-2", 1, {Header.TOPIC: "bad"})
    sender.flush()
    receiver = streamer.new_receiver("bad", "reader")
    got = collect(receiver, 3)
    assert [(e.run_id, bool(e.malformed)) for e in got] == [("good-1", False), ("garbage", True), ("good-2", False)]


def test_the_engine_skips_a_malformed_event_and_goes_on(pg_dsn, pg_schema):
    """A garbage row on a status topic is counted as malformed; the runs after it still finish."""
    import dataclasses
    import enum

    from prometheus_client import CollectorRegistry

    import actorflow as af
    from actorflow.adapters.memory import MemoryRoleScheduler
    from actorflow.adapters.postgres import PostgresRecordStore

    class S(enum.IntEnum):
        A = 1
        B = 2

    @dataclasses.dataclass
    class Obj:
        x: int = 0

    b = af.Builder("malformed", Obj, S)
    b.add_step(S.A, lambda run: S.B, S.B)
    streamer = PostgresEventStreamer(pg_dsn, schema=pg_schema)
    store = PostgresRecordStore(pg_dsn, schema=pg_schema)
    registry = CollectorRegistry()
    try:
        wf = b.build(streamer, store, MemoryRoleScheduler())
        migrate(pg_dsn, pg_schema)
        with _raw(pg_dsn, pg_schema) as conn:
            conn.execute(
                "INSERT INTO workflow_events (topic, run_id, type, headers, created_at, shard_hash)"
                " VALUES ('malformed-1', 'garbage', 1, 'not json', now(), 0)"
            )
        run_id = wf.trigger("after", Obj())
        with af.Supervisor([wf], registry=registry):
            wf.await_status("after", run_id, S.B, timeout=10)
        labels = {"workflow_name": "malformed", "process_name": "a-consumer-1-of-1"}
        assert registry.get_sample_value("actorflow_malformed_events_total", labels) == 1
    finally:
        streamer.close()
        store.close()


def test_retention_deletes_old_events(pg_dsn, pg_schema):
    clock_now = datetime(2030, 1, 1, tzinfo=UTC)

    class Clock:
        def now(self) -> datetime:
            return clock_now

        def wait_until(self, deadline: datetime, *, timeout: float) -> None:
            return None

    streamer = PostgresEventStreamer(pg_dsn, schema=pg_schema, retention=timedelta(days=1), clock=Clock())
    try:
        sender = streamer.new_sender("old")
        sender.send("x", 1, {Header.TOPIC: "old"})
        sender.flush()
        clock_now += timedelta(days=2)
        sender.send("y", 1, {Header.TOPIC: "old"})
        sender.flush()
        assert streamer.cleanup() == 1
        receiver = streamer.new_receiver("old", "reader")
        assert [e.run_id for e in collect(receiver, 1)] == ["y"]
    finally:
        streamer.close()


def test_events_are_read_in_numeric_xid_order(streamer, pg_dsn, pg_schema):
    """Transaction ids are compared as numbers: 100000 comes after 99999 (not as text)."""
    migrate(pg_dsn, pg_schema)
    with _raw(pg_dsn, pg_schema) as conn:
        for xid, run_id in (("99999", "first"), ("100000", "second"), ("100001", "third")):
            conn.execute(
                "INSERT INTO workflow_events (xid, topic, run_id, type, headers, created_at, shard_hash)"
                " VALUES (%s::xid8, 'order', %s, 1, '{}', now(), 0)",
                (xid, run_id),
            )
    receiver = streamer.new_receiver("order", "reader")
    first = collect(receiver, 1)
    assert [e.run_id for e in first] == ["first"]
    receiver.ack(first[0])
    receiver.close()
    again = streamer.new_receiver("order", "reader")  # resumes from the durable (xid, id) cursor
    assert [e.run_id for e in collect(again, 2)] == ["second", "third"]
