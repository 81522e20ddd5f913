"""The PostgreSQL event log's cut: only transactions that can write this schema's log hold events back.

`pg_snapshot_xmin` is server-wide: a transaction open in another database, or in another
schema of this one, used to stall every receiver until it ended. A transaction can only
write this schema's event table after it has touched this schema (a lock on one of its
tables, taken before its transaction id and held to its end), so the refined cut (read
once the marker says events are held back) ignores every open transaction whose session
holds no lock here: another database's, another schema's. A writer of this schema still
holds the cut.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.adapters.postgres import PostgresEventStreamer, PostgresRecordStore
from actorflow.protocols import ReceiverOptions
from tests.adapters.postgres.test_postgres_streamer import (
    SLOW_POLL,
    _open_write_transaction,
    _send_from_another_connection,
    collect,
)
from tests.model import Item, Stage, three_steps
from tests.waiting import eventually

pytestmark = pytest.mark.postgres


@pytest.fixture
def foreign_dsn(pg_dsn: str) -> Iterator[str]:
    """The DSN of a throwaway database of its own on the same server (dropped afterwards)."""
    name = f"af_foreign_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(pg_dsn, dbname=name)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def streamer(pg_dsn: str, pg_schema: str) -> Iterator[PostgresEventStreamer]:
    made = PostgresEventStreamer(pg_dsn, schema=pg_schema)
    yield made
    made.close()


def _plain_cut_holds(pg_dsn: str, xid: int) -> bool:
    """Whether the server-wide xmin cut is at or below ``xid`` now (the old cut would hold events back)."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()
    return row is not None and int(row[0]) <= xid


@pytest.fixture
def other_schema(pg_dsn: str, make_pg_schema) -> Iterator[str]:
    """Another actorflow schema of the same database, its event table made (events committed in it)."""
    schema = make_pg_schema()
    _send_from_another_connection(pg_dsn, schema, "elsewhere", "x")
    return schema


@pytest.mark.parametrize("where", ["database", "schema"])
def test_a_transaction_open_elsewhere_does_not_hold_events_back(
    streamer, pg_dsn, pg_schema, foreign_dsn, other_schema, where
):
    """An xid held open in another database, or by another actorflow schema's writer of this
    database (it wrote its own event log), older than the events: they arrive at once anyway."""
    receiver = streamer.new_receiver("elsewhere", "reader", SLOW_POLL)
    assert receiver.receive(1, 0.2) == []
    if where == "database":
        blocker, _, xid = _open_write_transaction(foreign_dsn)
        assert conninfo_to_dict(foreign_dsn)["dbname"] != conninfo_to_dict(pg_dsn)["dbname"]
    else:
        blocker, _, xid = _open_write_transaction(pg_dsn, other_schema)
        blocker.execute(
            sql.SQL(
                "INSERT INTO {}.workflow_events (topic, run_id, type, headers, created_at, shard_hash)"
                " VALUES ('elsewhere', 'y', 1, '{{}}', now(), 0)"
            ).format(sql.Identifier(other_schema))
        )
    try:
        committed = _send_from_another_connection(pg_dsn, pg_schema, "elsewhere", "a")
        _send_from_another_connection(pg_dsn, pg_schema, "elsewhere", "b")
        assert _plain_cut_holds(pg_dsn, xid), "the server-wide cut does not hold: the test proves nothing"
        got = collect(receiver, 2, timeout=5.0)
        took = time.monotonic() - committed
        assert blocker.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS  # still open
    finally:
        blocker.close()
    assert [e.run_id for e in got] == ["a", "b"]
    assert took < 2.0, f"delivered {took:.2f}s after the commit"


def test_a_writer_of_this_schema_still_holds_events_back(streamer, pg_dsn, pg_schema, foreign_dsn, other_schema):
    """The safety case: with foreign transactions open too (another database's, another schema's:
    the refined cut is read), an open transaction that touched this schema, older than the events,
    holds them back until it ends; then they arrive. It need not have written here yet (it
    may), nor be of any actorflow release (no protocol: its lock on the table says it)."""
    receiver = streamer.new_receiver("same", "reader", ReceiverOptions(poll_frequency=0.05))
    assert receiver.receive(1, 0.2) == []
    foreign, _, _ = _open_write_transaction(foreign_dsn)
    neighbour, _, _ = _open_write_transaction(pg_dsn, other_schema)
    ours, _, _ = _open_write_transaction(pg_dsn, pg_schema)  # read our event table, then took an xid
    try:
        _send_from_another_connection(pg_dsn, pg_schema, "same", "a")
        assert receiver.receive(10, 0.5) == []  # committed, but behind this schema's open transaction
        assert receiver.receive(10, 0.3) == []
        ours.rollback()
        assert [e.run_id for e in collect(receiver, 1, timeout=5.0)] == ["a"]
    finally:
        ours.close()
        neighbour.close()
        foreign.close()


def test_an_event_written_by_a_transaction_open_behind_a_foreign_one_is_not_skipped(
    streamer, pg_dsn, pg_schema, other_schema
):
    """The refined cut never passes a writer of this schema: events committed after a foreign
    transaction began, and an event its writer commits last, all arrive, in commit order."""
    receiver = streamer.new_receiver("order", "reader", ReceiverOptions(poll_frequency=0.05))
    assert receiver.receive(1, 0.2) == []
    neighbour, _, _ = _open_write_transaction(pg_dsn, other_schema)
    late = psycopg.connect(pg_dsn, options=f"-c search_path={pg_schema}")  # one transaction, committed last
    try:
        late.execute(
            "INSERT INTO workflow_events (topic, run_id, type, headers, created_at, shard_hash)"
            " VALUES ('order', 'late', 1, '{\"topic\": \"order\"}', now(), 0)"
        )
        _send_from_another_connection(pg_dsn, pg_schema, "order", "early")
        assert receiver.receive(10, 0.5) == []  # behind the late writer, whatever the neighbour does
        late.commit()
        got = collect(receiver, 2, timeout=5.0)
    finally:
        late.close()
        neighbour.close()
    assert sorted(e.run_id for e in got) == ["early", "late"]


@pytest.mark.parametrize("where", ["database", "schema"])
def test_runs_complete_while_a_transaction_is_open_elsewhere(pg_dsn, pg_schema, foreign_dsn, other_schema, where):
    """A workflow keeps running its runs to the end while another database's, or another
    schema's, transaction (holding an xid) stays open the whole time."""
    streamer = PostgresEventStreamer(pg_dsn, schema=pg_schema)
    store = PostgresRecordStore(pg_dsn, schema=pg_schema)
    wf = three_steps(pg_schema).build(
        streamer, store, MemoryRoleScheduler(), defaults=af.Options(polling_frequency=0.05)
    )
    supervisor = af.Supervisor([wf])
    if where == "database":
        blocker, _, xid = _open_write_transaction(foreign_dsn)
    else:
        blocker, _, xid = _open_write_transaction(pg_dsn, other_schema)
    try:
        supervisor.start()
        started = time.monotonic()
        runs = {f"r{i}": wf.trigger(f"r{i}", Item(f"r{i}")) for i in range(5)}
        for foreign_id, run_id in runs.items():
            assert wf.await_status(foreign_id, run_id, Stage.DONE, timeout=10).meta.version == 4
        took = time.monotonic() - started
        eventually(lambda: _plain_cut_holds(pg_dsn, xid), what="the server-wide cut held by the other xid")
    finally:
        supervisor.stop()
        blocker.close()
        streamer.close()
        store.close()
    assert took < 10.0
