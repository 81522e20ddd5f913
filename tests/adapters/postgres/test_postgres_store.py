"""PostgreSQL specifics: bad DSNs, unreadable rows, durable error counts, migrations, outages."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest
from three_steps import Item, Status, three_steps

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.adapters.postgres import (
    PostgresError,
    PostgresEventStreamer,
    PostgresRecordStore,
    PostgresTimeoutStore,
    migrate,
)


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
    assert migrate(pg_dsn, pg_schema) == [1, 2]
    assert migrate(pg_dsn, pg_schema) == []
    with _raw(pg_dsn, pg_schema) as conn:
        assert conn.execute("SELECT version FROM actorflow_migrations ORDER BY 1").fetchall() == [(1,), (2,)]


def test_concurrent_migrations_apply_once(pg_dsn, pg_schema):
    results: list[list[int]] = []
    threads = [threading.Thread(target=lambda: results.append(migrate(pg_dsn, pg_schema))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(tuple, results)) == [(), (), (), (1, 2)]


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
        assert wf.await_status("x", run_id, Status.DONE, timeout=10).object.steps == 3
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
            assert wf.await_status("x", run_id, Status.DONE, timeout=10).object.steps == 3
        finally:
            wf.stop()
    finally:
        store.close()
        streamer.close()


def test_an_unreadable_record_is_reported_and_skipped(adapters, pg_dsn, pg_schema):
    """A foreign row (run_state 99) makes lookup raise CorruptRecord; the engine skips its event."""
    streamer, store, _ = adapters
    wf = three_steps("pg").build(streamer, store, MemoryRoleScheduler())
    good = wf.trigger("good", Item("good"))
    bad = wf.trigger("bad", Item("bad"))
    with _raw(pg_dsn, pg_schema) as conn:
        conn.execute("UPDATE workflow_records SET run_state = 99 WHERE run_id = %s", (bad,))
    with pytest.raises(af.CorruptRecord):
        store.lookup(bad)
    wf.run()
    try:
        assert wf.await_status("good", good, Status.DONE, timeout=10).object.steps == 3
        assert wf.states()["started-consumer-1-of-1"] is af.ProcessState.RUNNING
    finally:
        wf.stop()


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
            run = wf.await_status(foreign_id, run_id, Status.DONE, timeout=60)
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
    assert f"schema {pg_schema}: applied migrations 1, 2" in first.stdout
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
