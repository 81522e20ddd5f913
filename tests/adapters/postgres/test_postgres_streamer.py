"""The PostgreSQL event log: visibility order, wake-ups, retention, bad rows."""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from actorflow.adapters.postgres import PostgresEventStreamer, migrate
from actorflow.protocols import Header, ReceiverOptions, shard_of
from tests.retention_checks import assert_stopping_ends_a_running_cleanup
from tests.waiting import eventually

pytestmark = pytest.mark.postgres


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


SLOW_POLL = ReceiverOptions(poll_frequency=30.0)  # polling cannot explain a quick return


def _send_from_another_connection(pg_dsn: str, schema: str, topic: str, run_id: str) -> float:
    """Commit one event through a streamer of its own (its own pool); when the commit returned."""
    other = PostgresEventStreamer(pg_dsn, schema=schema)
    try:
        sender = other.new_sender(topic)
        sender.send(run_id, 1, {Header.TOPIC: topic})
        sender.flush()
        return time.monotonic()
    finally:
        other.close()


def _timed_receive(receiver, write, timeout: float = 10.0) -> tuple[list, float]:
    """receive() while ``write()`` (returning when its commit did) runs in another thread.

    Returns the events and the seconds from that commit to receive() returning.
    """
    committed: list[float] = []
    thread = threading.Thread(target=lambda: committed.append(write()))
    thread.start()
    got = list(receiver.receive(10, timeout))
    returned = time.monotonic()
    thread.join(timeout=30)
    assert committed, "the write did not complete"
    return got, returned - committed[0]


def test_a_waiting_receiver_wakes_on_notify(streamer, pg_dsn, pg_schema):
    """receive() returns as soon as another connection commits: NOTIFY, not polling (every 30 s here)."""
    receiver = streamer.new_receiver("wake", "reader", SLOW_POLL)
    assert receiver.receive(1, 0.2) == []  # the listener is connected
    started = threading.Event()

    def write() -> float:
        started.wait(10)
        return _send_from_another_connection(pg_dsn, pg_schema, "wake", "x")

    threading.Timer(0.2, started.set).start()
    got, after_commit = _timed_receive(receiver, write)
    assert [e.run_id for e in got] == ["x"]
    assert after_commit < 2.0, f"receive returned {after_commit:.2f}s after the commit"


def _listener_pids(pg_dsn: str, schema: str) -> set[int]:
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND query LIKE 'LISTEN %%'",
            (f"actorflow-{schema}",),
        ).fetchall()
    return {pid for (pid,) in rows}


def _until(condition, timeout: float = 10.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not hold within {timeout}s"
        threading.Event().wait(0.01)


def test_receivers_get_events_after_the_listen_connection_is_cut(streamer, pg_dsn, pg_schema):
    """The server cuts the LISTEN session while a receiver waits: an event committed then still
    arrives at once (the reconnection wakes every waiter), and so do later ones (LISTEN again)."""
    receiver = streamer.new_receiver("cut", "reader", SLOW_POLL)
    assert receiver.receive(1, 0.2) == []
    (listen_pid,) = _listener_pids(pg_dsn, pg_schema)

    def cut_then_write() -> float:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (listen_pid,))
        return _send_from_another_connection(pg_dsn, pg_schema, "cut", "during")

    got, after_commit = _timed_receive(receiver, cut_then_write)
    assert [e.run_id for e in got] == ["during"]
    assert after_commit < 3.0, f"receive returned {after_commit:.2f}s after the commit"
    receiver.ack(got[0])

    _until(lambda: _listener_pids(pg_dsn, pg_schema) - {listen_pid}, what="a new LISTEN session")
    got, after_commit = _timed_receive(
        receiver, lambda: _send_from_another_connection(pg_dsn, pg_schema, "cut", "after")
    )
    assert [e.run_id for e in got] == ["after"]
    assert after_commit < 2.0


def _open_write_transaction(pg_dsn: str, schema: str | None = None) -> tuple[psycopg.Connection, int, int]:
    """A session holding a transaction with a transaction id; (connection, its pid, its xid).

    With ``schema``, the transaction first touches that schema's event table, as any
    writer of it does (a lock on it, then the id): it may write events there, so it holds
    that schema's readers back. Without, it touches no table (another schema's writer).
    """
    conn = psycopg.connect(pg_dsn)  # not autocommit: the transaction stays open
    if schema is not None:
        conn.execute(sql.SQL("SELECT 1 FROM {}.workflow_events LIMIT 0").format(sql.Identifier(schema)))
    row = conn.execute("SELECT pg_backend_pid(), pg_current_xact_id()::text::bigint").fetchone()
    assert row is not None
    return conn, int(row[0]), int(row[1])


def test_events_held_back_by_an_open_transaction_arrive_promptly_when_it_ends(streamer, pg_dsn, pg_schema):
    """An older transaction that writes no event holds committed events back; its end notifies nobody,
    yet the receiver gets them at once (it looks again soon), not after its 30 s poll."""
    receiver = streamer.new_receiver("held", "reader", SLOW_POLL)
    assert receiver.receive(1, 0.2) == []
    blocker, _, _ = _open_write_transaction(pg_dsn, pg_schema)
    try:
        _send_from_another_connection(pg_dsn, pg_schema, "held", "a")
        _send_from_another_connection(pg_dsn, pg_schema, "held", "b")
        assert receiver.receive(10, 0.5) == []  # committed, but behind the open transaction
        ended: list[float] = []
        threading.Timer(0.3, lambda: (blocker.rollback(), ended.append(time.monotonic()))).start()
        got = list(receiver.receive(10, 10))
        returned = time.monotonic()
    finally:
        _until(lambda: bool(ended), what="the blocking transaction's end")
        blocker.close()
    assert [e.run_id for e in got] == ["a", "b"]
    assert returned - ended[0] < 2.0, f"received {returned - ended[0]:.2f}s after the blocker ended"


def test_delivery_held_back_for_long_is_logged_with_the_blocking_session(
    streamer, pg_dsn, pg_schema, caplog, monkeypatch
):
    """Past the threshold (10 s; 0.2 s here) a warning names the oldest open transaction's session."""
    import actorflow.adapters.postgres.streamer as module

    monkeypatch.setattr(module, "_HELD_WARN_AFTER", 0.2)
    receiver = streamer.new_receiver("long", "reader", ReceiverOptions(poll_frequency=0.05))
    assert receiver.receive(1, 0.2) == []
    blocker, pid, xid = _open_write_transaction(pg_dsn, pg_schema)
    try:
        _send_from_another_connection(pg_dsn, pg_schema, "long", "a")
        with caplog.at_level(logging.WARNING, logger="actorflow.postgres"):
            assert receiver.receive(10, 1.0) == []
            assert receiver.receive(10, 0.5) == []  # rate-limited: no second warning
        with psycopg.connect(pg_dsn, autocommit=True) as admin:  # sessions older than ours may be named instead
            older = {
                row[0]
                for row in admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE backend_xid IS NOT NULL"
                    " AND backend_xid::text::bigint <= %s",
                    (xid,),
                )
            }
    finally:
        blocker.close()
    warnings = [r.getMessage() for r in caplog.records if "still open on the server" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "idle_in_transaction_session_timeout" in warnings[0]
    named = re.search(r"pid (\d+) \(", warnings[0])
    assert named is not None, warnings[0]
    assert int(named.group(1)) in older | {pid}
    assert [e.run_id for e in collect(receiver, 1)] == ["a"]


def test_stream_from_latest_starts_after_committed_events_held_back_by_an_open_transaction(streamer, pg_dsn, pg_schema):
    """ "Latest" means after every committed event, also those an older open transaction still holds back."""
    sender = streamer.new_sender("latest")
    sender.send("warm-up", 1, {Header.TOPIC: "latest"})
    sender.flush()
    blocker, _, _ = _open_write_transaction(pg_dsn, pg_schema)
    try:
        sender.send("old", 1, {Header.TOPIC: "latest"})
        sender.flush()
        receiver = streamer.new_receiver("latest", "late", ReceiverOptions(stream_from_latest=True))
    finally:
        blocker.close()
    sender.send("new", 1, {Header.TOPIC: "latest"})
    sender.flush()
    assert [e.run_id for e in collect(receiver, 1)] == ["new"]
    assert receiver.receive(10, 0.2) == []


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
        sender.flush()  # its first poke starts a background clean-up: let it end first
        streamer.retention_job.join(5.0)
        clock_now += timedelta(days=2)
        sender.send("y", 1, {Header.TOPIC: "old"})
        sender.flush()
        assert streamer.cleanup() == 1
        receiver = streamer.new_receiver("old", "reader")
        assert [e.run_id for e in collect(receiver, 1)] == ["y"]
    finally:
        streamer.close()


def test_events_are_read_in_numeric_xid_order(streamer, pg_dsn, pg_schema):
    """Transaction ids are compared as numbers: 10000 comes after 9999 (not as text).

    The ids straddle a power of ten below the server's current xid (below the xmin cut, so readable).
    """
    migrate(pg_dsn, pg_schema)
    with _raw(pg_dsn, pg_schema) as conn:
        row = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()
        assert row is not None
        power = 10 ** (len(str(int(row[0]) - 2)) - 1)
        if power < 10:
            pytest.skip("the server's transaction ids are too young")
        for xid, run_id in ((power - 1, "first"), (power, "second"), (power + 1, "third")):
            conn.execute(
                "INSERT INTO workflow_events (xid, topic, run_id, type, headers, created_at, shard_hash)"
                " VALUES (%s::text::xid8, 'order', %s, 1, '{}', now(), 0)",
                (str(xid), run_id),
            )
    receiver = streamer.new_receiver("order", "reader")
    first = collect(receiver, 1)
    assert [e.run_id for e in first] == ["first"]
    receiver.ack(first[0])
    receiver.close()
    again = streamer.new_receiver("order", "reader")  # resumes from the durable (xid, id) cursor
    assert [e.run_id for e in collect(again, 2)] == ["second", "third"]


# -- retention ------------------------------------------------------------------------------------


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.value = now

    def now(self) -> datetime:
        return self.value

    def wait_until(self, deadline: datetime, *, timeout: float) -> None:
        return None


def _count(pg_dsn: str, schema: str, where: str = "TRUE") -> int:
    with _raw(pg_dsn, schema) as conn:
        row = conn.execute(f"SELECT count(*) FROM workflow_events WHERE {where}").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def test_cleanup_deletes_in_bounded_batches(pg_dsn, pg_schema):
    """Each delete takes at most a batch; cleanup() goes on until none is left."""
    clock = _Clock(datetime(2030, 1, 1, tzinfo=UTC))
    streamer = PostgresEventStreamer(pg_dsn, schema=pg_schema, retention=timedelta(days=1), clock=clock)
    try:
        sender = streamer.new_sender("old")
        for i in range(5):
            sender.send(f"old-{i}", 1, {Header.TOPIC: "old"})
        sender.flush()  # its first poke starts a background clean-up: let it end first
        streamer.retention_job.join(5.0)
        clock.value += timedelta(days=2)
        sender.send("new", 1, {Header.TOPIC: "old"})
        sender.flush()
        cutoff = clock.value - timedelta(days=1)
        assert streamer.retention_job.delete_batch(cutoff, 2) == 2
        assert _count(pg_dsn, pg_schema) == 4
        streamer.retention_job.batch = 2
        assert streamer.cleanup() == 3
        assert _count(pg_dsn, pg_schema) == 1
    finally:
        streamer.close()


def test_retention_runs_on_a_timer_while_receivers_are_busy(pg_dsn, pg_schema):
    """A receiver that always has events to read (never idle) still gets old events deleted."""
    clock = _Clock(datetime(2030, 1, 1, tzinfo=UTC))
    streamer = PostgresEventStreamer(pg_dsn, schema=pg_schema, retention=timedelta(days=1), clock=clock)
    try:
        streamer.retention_job.every = 0.05
        sender = streamer.new_sender("busy")
        for i in range(20):
            sender.send(f"old-{i}", 1, {Header.TOPIC: "busy"})
        sender.flush()
        clock.value += timedelta(days=2)
        receiver = streamer.new_receiver("busy", "reader")
        deadline = time.monotonic() + 15
        received = 0
        while _count(pg_dsn, pg_schema, "run_id LIKE 'old-%'"):
            assert time.monotonic() < deadline, "the old events were not deleted"
            sender.send("new", 1, {Header.TOPIC: "busy"})
            sender.flush()
            got = receiver.receive(1, 5)  # one at a time: never comes back empty
            assert got
            received += len(got)
            receiver.ack(got[-1])
        assert received > 0
    finally:
        streamer.close()


def test_closing_ends_a_running_cleanup(pg_dsn, pg_schema):
    """close() (the last Supervisor.stop) stops the clean-up thread after its batch; no thread is left."""
    streamer = PostgresEventStreamer(pg_dsn, schema=pg_schema, retention=timedelta(days=1))
    assert_stopping_ends_a_running_cleanup(streamer, streamer.close)


def test_a_commit_wakes_only_the_shard_its_events_belong_to(streamer):
    """Shards 0 and 1 of 2 wait on a topic; events of shard-0 runs notify shard 0 alone (shard 1 reads nothing)."""
    from actorflow.adapters.postgres.listener import shard_key

    receivers = [streamer.new_receiver("sharded", "r", ReceiverOptions(shard=i, shard_count=2)) for i in range(2)]
    for receiver in receivers:
        assert receiver.receive(10, 0.05) == []  # registers the shard keys, the listener started
    listener = streamer.db.listener()
    assert listener.connected.wait(5)
    keys = [shard_key("e:sharded", i, 2) for i in range(2)]
    before = [listener.version(key) for key in keys]
    runs = [f"run-{i}" for i in range(40) if shard_of(f"run-{i}", 2) == 0][:3]
    sender = streamer.new_sender("sharded")
    for run_id in runs:
        sender.send(run_id, 1, {})
    sender.flush()
    assert [e.run_id for e in collect(receivers[0], 3)] == runs
    assert listener.version(keys[0]) > before[0]
    assert listener.version(keys[1]) == before[1], "the other shard was woken for events not its own"
    assert receivers[1].receive(10, 0.05) == []


def test_a_notice_from_a_writer_that_names_no_runs_wakes_every_shard(streamer, pg_dsn, pg_schema):
    """An older writer's notice names only the topic: every shard of it looks."""
    from actorflow.adapters.postgres.listener import shard_key

    for i in range(2):
        streamer.new_receiver("plain", "r", ReceiverOptions(shard=i, shard_count=2)).receive(1, 0.05)
    listener = streamer.db.listener()
    assert listener.connected.wait(5)
    keys = [shard_key("e:plain", i, 2) for i in range(2)]
    before = [listener.version(key) for key in keys]
    with _raw(pg_dsn, pg_schema) as conn:
        conn.execute("SELECT pg_notify(%s, 'e:plain')", (streamer.db.channel,))
    eventually(
        lambda: all(listener.version(k) > b for k, b in zip(keys, before, strict=True)),
        what="every shard woken by a notice naming no runs",
    )
