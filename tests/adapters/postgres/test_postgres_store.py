"""PostgreSQL specifics: bad DSNs, unreadable rows, durable error counts, migrations, outages."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest
from prometheus_client import CollectorRegistry

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.adapters.postgres import (
    PostgresError,
    PostgresEventStreamer,
    PostgresRecordStore,
    PostgresTimeoutStore,
    migrate,
)
from actorflow.adapters.postgres._db import RESENDS
from actorflow.protocols import Lease
from actorflow.testing.adaptertest._records import dummy_record
from tests.adapters.sql_schema import versions
from tests.model import Item, Stage, three_steps
from tests.waiting import eventually

pytestmark = pytest.mark.postgres


@pytest.fixture
def adapters(pg_dsn: str, pg_schema: str):
    made = (
        PostgresEventStreamer(pg_dsn, schema=pg_schema),
        PostgresRecordStore(pg_dsn, schema=pg_schema),
        PostgresTimeoutStore(pg_dsn, schema=pg_schema),
    )
    yield made
    for adapter in made:
        adapter.close()


def _raw(pg_dsn: str, schema: str) -> psycopg.Connection:
    return psycopg.connect(pg_dsn, options=f"-c search_path={schema}", autocommit=True)


def test_an_invalid_dsn_is_refused_when_the_adapter_is_made():
    with pytest.raises(PostgresError, match="invalid PostgreSQL DSN"):
        PostgresRecordStore("this is not a dsn")


def test_an_unreachable_server_fails_fast_with_the_reason():
    """No hang: the first use reports the connection failure (port 1 refuses at once)."""
    store = PostgresRecordStore("postgresql://postgres@127.0.0.1:1/test")
    started = time.monotonic()
    with pytest.raises(PostgresError, match="cannot connect to PostgreSQL"):
        store.lookup("x")
    assert time.monotonic() - started < 15
    store.close()


def test_a_bad_schema_name_is_refused():
    with pytest.raises(ValueError, match="plain identifier"):
        PostgresRecordStore("postgresql://postgres@127.0.0.1/test", schema="x; drop table y")


def test_migrate_is_versioned_and_idempotent(pg_dsn, pg_schema):
    known = versions("postgres")
    assert migrate(pg_dsn, pg_schema) == known
    assert migrate(pg_dsn, pg_schema) == []
    with _raw(pg_dsn, pg_schema) as conn:
        assert conn.execute("SELECT version FROM actorflow_migrations ORDER BY 1").fetchall() == [(v,) for v in known]
        indexes = {
            name for (name,) in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", (pg_schema,))
        }
    assert "workflow_error_counts_by_run" in indexes


def test_concurrent_migrations_apply_once(pg_dsn, pg_schema):
    results: list[list[int]] = []
    threads = [threading.Thread(target=lambda: results.append(migrate(pg_dsn, pg_schema))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(tuple, results)) == [(), (), (), tuple(versions("postgres"))]


def test_error_counts_survive_reopening(pg_dsn, pg_schema):
    store = PostgresRecordStore(pg_dsn, schema=pg_schema)
    assert store.add_error("p", "run") == 1
    assert store.add_error("p", "run") == 2
    store.close()
    reopened = PostgresRecordStore(pg_dsn, schema=pg_schema)
    try:
        assert reopened.add_error("p", "run") == 3
        reopened.clear_errors("p", "run")
        assert reopened.add_error("p", "run") == 1
    finally:
        reopened.close()


def test_direct_publishing_needs_no_outbox_relay(adapters):
    streamer, store, _ = adapters
    wf = three_steps("pg").build(streamer, store, MemoryRoleScheduler())
    assert wf.publishes_directly
    wf.run()
    try:
        assert "outbox-consumer" not in wf.states()
        run_id = wf.trigger("x", Item("x"))
        assert wf.await_status("x", run_id, Stage.DONE, timeout=10).object.steps == 3
    finally:
        wf.stop()
    assert store.list_outbox_events(wf.name, 10) == []


def test_another_databases_streamer_goes_through_the_outbox(pg_dsn, pg_schema, make_pg_schema):
    store = PostgresRecordStore(pg_dsn, schema=pg_schema)
    streamer = PostgresEventStreamer(pg_dsn, schema=make_pg_schema())
    try:
        wf = three_steps("pg").build(streamer, store, MemoryRoleScheduler())
        assert not wf.publishes_directly
        wf.run()
        try:
            assert "outbox-consumer" in wf.states()
            run_id = wf.trigger("x", Item("x"))
            assert wf.await_status("x", run_id, Stage.DONE, timeout=10).object.steps == 3
        finally:
            wf.stop()
    finally:
        store.close()
        streamer.close()


def test_an_unreadable_record_is_reported_and_skipped(adapters, pg_dsn, pg_schema):
    """A foreign row (run_state 99) makes lookup raise CorruptRecord; the engine skips its event.

    It is counted as a corrupt record (the `ActorflowCorruptRecords` alert), not as a
    malformed event: the event was fine.
    """
    streamer, store, _ = adapters
    wf = three_steps("pg").build(streamer, store, MemoryRoleScheduler())
    labels = {"workflow_name": "pg", "process_name": "started-consumer-1-of-1"}

    def count(metric: str) -> float:
        return wf.metrics.registry.get_sample_value(metric, labels) or 0.0

    corrupt, malformed = count("actorflow_corrupt_records_total"), count("actorflow_malformed_events_total")
    good = wf.trigger("good", Item("good"))
    bad = wf.trigger("bad", Item("bad"))
    with _raw(pg_dsn, pg_schema) as conn:
        conn.execute("UPDATE workflow_records SET run_state = 99 WHERE run_id = %s", (bad,))
    with pytest.raises(af.CorruptRecord):
        store.lookup(bad)
    wf.run()
    try:
        assert wf.await_status("good", good, Stage.DONE, timeout=10).object.steps == 3
        assert wf.states()["started-consumer-1-of-1"] is af.ProcessState.RUNNING
        eventually(lambda: count("actorflow_corrupt_records_total") == corrupt + 1, what="the corrupt run counted")
    finally:
        wf.stop()
    assert count("actorflow_malformed_events_total") == malformed


def test_every_run_finishes_when_the_server_cuts_every_connection(adapters, pg_dsn, pg_schema):
    """pg_terminate_backend on all of the node's sessions, three times, while runs are in flight."""
    streamer, store, _ = adapters
    wf = three_steps("pg").build(streamer, store, MemoryRoleScheduler())
    registry = __import__("prometheus_client").CollectorRegistry()
    policy = af.RestartPolicy(initial=0.05, maximum=0.5, jitter=0.05)
    runs = [(f"r{i}", wf.trigger(f"r{i}", Item(f"r{i}"))) for i in range(300)]
    app = f"actorflow-{pg_schema}"

    def completed() -> int:
        with _raw(pg_dsn, pg_schema) as conn:
            row = conn.execute("SELECT count(*) FROM workflow_records WHERE run_state = 5").fetchone()
            return int(row[0]) if row else 0

    with af.Supervisor([wf], registry=registry, restart=policy):
        for target in (50, 120, 200):
            deadline = time.monotonic() + 30
            while completed() < target and time.monotonic() < deadline:
                threading.Event().wait(0.02)
            with psycopg.connect(pg_dsn, autocommit=True) as admin:
                cut = 0
                deadline = time.monotonic() + 5
                while not cut and time.monotonic() < deadline:  # the node may be reconnecting
                    row = admin.execute(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                        (app,),
                    ).fetchone()
                    cut = row[0] if row else 0
                assert cut > 0
        for foreign_id, run_id in runs:
            run = wf.await_status(foreign_id, run_id, Stage.DONE, timeout=60)
            assert run.meta.version == 4
    with _raw(pg_dsn, pg_schema) as conn:
        counts = conn.execute("SELECT count(*) FROM workflow_record_snapshots GROUP BY run_id").fetchall()
    assert {c for (c,) in counts} == {4}  # each transition stored exactly once


def test_timestamps_keep_microseconds_and_the_instant(adapters):
    _, _store, timeouts = adapters
    when = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    timeout_id = timeouts.create("wf", "fid", "run", 2, when, created_at=when)
    (found,) = timeouts.list("wf")
    assert found.id == timeout_id
    assert found.expire_at == when
    assert found.created_at == when


def test_the_db_migrate_command(pg_dsn, pg_schema):
    """`actorflow db migrate --dsn URL --schema S` applies the versions, then nothing."""
    import subprocess
    import sys

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "actorflow.cli", "db", "migrate", "--dsn", pg_dsn, "--schema", pg_schema],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    first, second = run(), run()
    assert first.returncode == 0, first.stderr
    assert f"schema {pg_schema}: applied migrations 1, 2, 3" in first.stdout
    assert "none (already up to date)" in second.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "actorflow.cli", "db", "migrate", "--dsn", "postgresql://postgres@127.0.0.1:1/x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0
    assert "cannot connect to PostgreSQL" in bad.stderr


def test_a_supervisor_on_an_unreachable_server_fails_to_start_with_the_reason():
    """No hang and no crash loop: start() raises the connection failure and leaves nothing running."""
    dsn = "postgresql://postgres@127.0.0.1:1/test"
    wf = three_steps("away").build(PostgresEventStreamer(dsn), PostgresRecordStore(dsn), MemoryRoleScheduler())
    sup = af.Supervisor([wf])
    started = time.monotonic()
    with pytest.raises(PostgresError, match="cannot connect to PostgreSQL"):
        sup.start()
    assert time.monotonic() - started < 15
    assert not sup.running
    assert wf.states() == {}


# -- unreadable rows ------------------------------------------------------------------------------


def _outbox_store(pg_dsn: str, pg_schema: str) -> PostgresRecordStore:
    """A store whose events go to its outbox (no streamer in its schema)."""
    return PostgresRecordStore(pg_dsn, schema=pg_schema)


def test_an_unreadable_outbox_row_is_dropped_and_the_rest_relayed(pg_dsn, pg_schema, caplog):
    """An outbox row that can never be relayed is logged and deleted, so it cannot hold up the rows behind it."""
    store = _outbox_store(pg_dsn, pg_schema)
    try:
        first, second = dummy_record(foreign_id="first"), dummy_record(foreign_id="second")
        store.store(first)
        store.store(second)
        with _raw(pg_dsn, pg_schema) as conn:
            conn.execute("UPDATE workflow_outbox SET headers = 'garbage' WHERE run_id = %s", (first.run_id,))

        with caplog.at_level(logging.ERROR, logger="actorflow.postgres"):
            assert [e.run_id for e in store.list_outbox_events(first.workflow_name, 10)] == [second.run_id]
        assert "dropped unreadable outbox event" in caplog.text
        with _raw(pg_dsn, pg_schema) as conn:
            assert conn.execute("SELECT run_id FROM workflow_outbox").fetchall() == [(second.run_id,)]
    finally:
        store.close()


def test_the_outbox_relay_goes_on_past_an_unreadable_row(pg_dsn, pg_schema, make_pg_schema):
    """A garbage outbox row ahead of the runs' rows: the relay drops it and every run finishes."""
    store = PostgresRecordStore(pg_dsn, schema=pg_schema)
    streamer = PostgresEventStreamer(pg_dsn, schema=make_pg_schema())
    try:
        wf = three_steps("pg").build(streamer, store, MemoryRoleScheduler())
        assert not wf.publishes_directly
        migrate(pg_dsn, pg_schema)
        with _raw(pg_dsn, pg_schema) as conn:
            conn.execute(
                "INSERT INTO workflow_outbox (id, workflow_name, run_id, type, headers, created_at)"
                " VALUES ('garbage', %s, 'nobody', 1, 'not json', now())",
                (wf.name,),
            )
        run_ids = [(f"r{i}", wf.trigger(f"r{i}", Item(f"r{i}"))) for i in range(3)]
        with af.Supervisor([wf], registry=CollectorRegistry()):
            for foreign_id, run_id in run_ids:
                assert wf.await_status(foreign_id, run_id, Stage.DONE, timeout=20).object.steps == 3
            assert wf.states()["outbox-consumer"] is af.ProcessState.RUNNING
        with _raw(pg_dsn, pg_schema) as conn:
            assert conn.execute("SELECT count(*) FROM workflow_outbox").fetchone() == (0,)
    finally:
        store.close()
        streamer.close()


@pytest.mark.parametrize(
    ("column", "value"),
    [("run_state", "99"), ("created_at", "'-infinity'"), ("updated_at", "'infinity'")],
    ids=["run state", "created at -infinity", "updated at infinity"],
)
def test_an_unreadable_record_row_is_skipped_by_list_with_a_warning(adapters, pg_dsn, pg_schema, caplog, column, value):
    """A foreign row makes lookup/latest raise CorruptRecord; list and snapshots leave it out with a warning."""
    _, store, _ = adapters
    good, bad = dummy_record(foreign_id="good"), dummy_record(foreign_id="bad")
    store.store(good)
    store.store(bad)
    with _raw(pg_dsn, pg_schema) as conn:
        for table in ("workflow_records", "workflow_record_snapshots"):
            conn.execute(f"UPDATE {table} SET {column} = {value} WHERE run_id = %s", (bad.run_id,))  # noqa: S608

    with pytest.raises(af.CorruptRecord) as caught:
        store.lookup(bad.run_id)
    assert caught.value.run_id == bad.run_id
    with pytest.raises(af.CorruptRecord):
        store.latest(bad.workflow_name, "bad")
    with caplog.at_level(logging.WARNING, logger="actorflow.postgres"):
        assert [r.run_id for r in store.list(good.workflow_name)] == [good.run_id]
        assert [r.run_id for r in store.list(good.workflow_name, order="desc")] == [good.run_id]
        assert store.snapshots(bad.run_id) == []
    assert "skipped an unreadable record row" in caplog.text
    assert bad.run_id in caplog.text
    assert store.lookup_many([good.run_id, bad.run_id]) == {good.run_id: good}


def test_an_unreadable_timeout_row_is_skipped_with_a_warning(adapters, pg_dsn, pg_schema, caplog):
    """A timeout expiring at -infinity (Python has no such time) is logged and left out; the poller goes on."""
    _, _, timeouts = adapters
    now = datetime.now(UTC)
    good = timeouts.create("w", "f", "run-good", 1, now)
    bad = timeouts.create("w", "f", "run-bad", 1, now)
    with _raw(pg_dsn, pg_schema) as conn:
        conn.execute("UPDATE workflow_timeouts SET expire_at = '-infinity' WHERE id = %s", (bad,))
    with caplog.at_level(logging.WARNING, logger="actorflow.postgres"):
        assert [t.id for t in timeouts.list("w")] == [good]
        assert [t.id for t in timeouts.list_valid("w", 1, now)] == [good]
    assert f"skipped unreadable timeout {bad}" in caplog.text


# -- migrations ---------------------------------------------------------------------------------


def test_a_newer_schema_is_refused(pg_dsn, pg_schema):
    """A schema migrated by a newer actorflow is not used: PostgresError says to upgrade, nothing is applied."""
    migrate(pg_dsn, pg_schema)
    with _raw(pg_dsn, pg_schema) as conn:
        conn.execute("INSERT INTO actorflow_migrations (version, name) VALUES (99, 'future')")
        conn.execute("DELETE FROM actorflow_migrations WHERE version = 3")
    newest = versions("postgres")[-1]
    with pytest.raises(
        PostgresError, match=rf"schema version 99, newer than this actorflow knows \({newest}\): upgrade"
    ):
        migrate(pg_dsn, pg_schema)
    store = PostgresRecordStore(pg_dsn, schema=pg_schema)
    try:
        with pytest.raises(PostgresError, match="upgrade actorflow"):
            store.list("w")
    finally:
        store.close()
    with _raw(pg_dsn, pg_schema) as conn:  # the missing version 3 was not applied behind the newer one
        recorded = [v for (v,) in conn.execute("SELECT version FROM actorflow_migrations ORDER BY 1")]
    assert recorded == [v for v in versions("postgres") if v != 3] + [99]


# -- connections the server cut -----------------------------------------------------------------


def _cut_sessions(pg_dsn: str, schema: str) -> int:
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
            (f"actorflow-{schema}",),
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_for_no_sessions(pg_dsn: str, schema: str) -> None:
    deadline = time.monotonic() + 10
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        while admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (f"actorflow-{schema}",)
        ).fetchone() != (0,):
            assert time.monotonic() < deadline, "the sessions did not end"
            threading.Event().wait(0.01)


def test_a_connection_cut_while_idle_is_replaced_before_anything_is_sent(adapters, pg_dsn, pg_schema):
    """Every pooled connection cut by the server: the next operation runs once, on a fresh connection."""
    _, store, _ = adapters
    assert store.add_error("p", "run") == 1
    store.db.pool().wait(timeout=10)  # the pool's connections are open (and about to be cut)
    assert _cut_sessions(pg_dsn, pg_schema) > 0
    _wait_for_no_sessions(pg_dsn, pg_schema)
    calls = []

    def count(conn: psycopg.Connection) -> int:
        calls.append(conn.info.backend_pid)
        row = conn.execute("SELECT count FROM workflow_error_counts WHERE process = 'p'").fetchone()
        return int(row[0]) if row else 0

    assert store.db.run("reading", count, resend=False) == 1
    assert len(calls) == 1, "a connection found cut before use is dropped unused, not tried and resent"
    assert store.add_error("p", "run") == 2  # not resent, and needed no resend


def test_work_whose_outcome_is_unknown_is_resent_only_when_allowed(adapters, pg_dsn, pg_schema):
    """A connection lost after a commit: resendable work runs again, work that must not (add_error) raises."""
    _, store, _ = adapters
    migrate(pg_dsn, pg_schema)
    with _raw(pg_dsn, pg_schema) as conn:
        conn.execute("CREATE TABLE attempts (n serial)")

    def commit_then_lose_the_connection(conn: psycopg.Connection) -> None:
        conn.execute("INSERT INTO attempts DEFAULT VALUES")  # autocommit: committed
        conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")  # the reply never comes

    def attempts() -> int:
        with _raw(pg_dsn, pg_schema) as conn:
            row = conn.execute("SELECT count(*) FROM attempts").fetchone()
        return int(row[0]) if row else 0

    with pytest.raises(PostgresError):
        store.db.run("once", commit_then_lose_the_connection, resend=False)
    assert attempts() == 1
    with pytest.raises(PostgresError):
        store.db.run("resent", commit_then_lose_the_connection)
    assert attempts() == 1 + 1 + RESENDS, "sent once, then resent RESENDS times before giving up"


def _claim_past_lock_timeouts(scheduler, role: str, node_id: str, *, timeout: float) -> tuple[Lease, int]:
    """``role`` for ``node_id`` once free, as a role scheduler's claims go on past failures; the lease and
    how many claims failed on a lock timeout (a session holding the lease row)."""
    from actorflow.testing.adaptertest import await_role

    timeouts = 0

    def claim() -> Lease | None:
        nonlocal timeouts
        try:
            return await_role(scheduler, role, node_id, timeout=timeout)
        except PostgresError as exc:
            assert "LockNotAvailable" in str(exc), exc
            timeouts += 1
            return None

    return eventually(claim, timeout=timeout, what=f"{role} claimed"), timeouts


def test_a_frozen_writer_holding_a_lease_lock_cannot_keep_the_role_from_its_next_holder(pg_dsn, pg_schema):
    """A node frozen inside a fenced write (the lease row share-locked, idle in transaction): the
    server ends its session after idle_in_transaction_session_timeout, and the role passes on."""
    from actorflow.adapters.postgres import PostgresRoleScheduler
    from actorflow.adapters.postgres._connect import IDLE_IN_TRANSACTION_MS, conninfo

    first = PostgresRoleScheduler(pg_dsn, schema=pg_schema, ttl=0.5)
    second = PostgresRoleScheduler(pg_dsn, schema=pg_schema, ttl=0.5)
    frozen = psycopg.connect(conninfo(pg_dsn, pg_schema))  # the sessions every adapter opens
    try:
        lease = first.acquire("role-a", "node-1")
        assert lease is not None
        # What a fenced write does first, and where a SIGSTOP would leave it.
        frozen.execute(
            "SELECT 1 FROM workflow_leases WHERE role = %s AND node_id = %s AND term = %s FOR SHARE",
            ("role-a", "node-1", lease.term),
        )
        started = time.monotonic()
        taken, _ = _claim_past_lock_timeouts(second, "role-a", "node-2", timeout=IDLE_IN_TRANSACTION_MS / 1000 + 10)
        assert taken.term > lease.term
        assert time.monotonic() - started < IDLE_IN_TRANSACTION_MS / 1000 + 5
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            frozen.execute("SELECT 1")  # its session was ended by the server
    finally:
        frozen.close()
        first.close()
        second.close()


def test_a_writer_frozen_mid_pipeline_is_ended_when_it_keeps_a_role_from_its_next_holder(pg_dsn, pg_schema):
    """A node frozen while sending a pipeline (the lease row share-locked, the session "active",
    which no server timeout ends): the next holder's claim times out on the lock, ends the
    stuck session, and takes the role."""
    from actorflow.adapters.postgres import PostgresRoleScheduler
    from actorflow.adapters.postgres._connect import LOCK_TIMEOUT_MS, STUCK_AFTER, conninfo

    first = PostgresRoleScheduler(pg_dsn, schema=pg_schema, ttl=0.5)
    second = PostgresRoleScheduler(pg_dsn, schema=pg_schema, ttl=0.5)
    frozen = psycopg.connect(conninfo(pg_dsn, pg_schema), autocommit=True)
    try:
        lease = first.acquire("role-a", "node-1")
        assert lease is not None
        # What a fenced write sends first, flushed with no sync: the server runs it and waits
        # for the rest of the pipeline, which a SIGSTOPped client never sends.
        pgconn = frozen.pgconn
        pgconn.enter_pipeline_mode()
        pgconn.send_query_params(b"BEGIN", None)
        pgconn.send_query_params(
            b"SELECT 1 FROM workflow_leases WHERE role = $1 AND node_id = $2 AND term = $3::bigint FOR SHARE",
            [b"role-a", b"node-1", str(lease.term).encode()],
        )
        pgconn.send_flush_request()
        while pgconn.flush():
            pass
        pid = pgconn.backend_pid

        def state() -> tuple[str, str] | None:
            with _raw(pg_dsn, pg_schema) as conn:
                row = conn.execute("SELECT state, wait_event FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            return None if row is None else (row[0], row[1])

        eventually(lambda: state() == ("active", "ClientRead"), timeout=10, what="the session waiting mid-pipeline")
        started = time.monotonic()
        bound = STUCK_AFTER + 2 * LOCK_TIMEOUT_MS / 1000 + 5
        taken, timeouts = _claim_past_lock_timeouts(second, "role-a", "node-2", timeout=bound)
        assert taken.term > lease.term
        assert time.monotonic() - started < bound
        assert timeouts >= 1, "the claim waited on the frozen session's lock"
        eventually(lambda: state() is None, timeout=10, what="the stuck session ended")
    finally:
        frozen.close()
        first.close()
        second.close()
