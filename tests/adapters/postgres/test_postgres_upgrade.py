"""A schema written by the previous release (versions 1-3, its ``actorflow_migrations``) is used in place.

The schema is built from the released migrations (checked unchanged, `tests.adapters.legacy`).
The tables had their present names already;
what changed is who creates the bookkeeping table (a named query now, not SQL built in
Python) and the runner (shared with SQLite). Each test builds a schema exactly as that
code left it, writes a workflow's state into it with plain SQL, then opens it with this
release's adapters.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from actorflow.adapters.postgres import PostgresEventStreamer, PostgresRecordStore, PostgresTimeoutStore, migrate
from tests.adapters.sql_schema import (
    LEGACY_VERSIONS,
    NOW,
    OLD,
    OLD_RUN,
    RECORD_COLUMNS,
    RUN,
    V1,
    V2,
    WORKFLOW,
    event_row,
    finish_the_legacy_run,
    new_versions,
    record_row,
    released_scripts,
)

pytestmark = pytest.mark.postgres

NEW = new_versions("postgres")  # the versions after the previous release's
APPLIED_AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _raw(dsn: str, schema: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, options=f"-c search_path={schema}", autocommit=True)


def build_legacy_schema(dsn: str, schema: str, versions: int = 3) -> dict[str, int]:
    """A schema as the previous release left it after ``versions`` migrations.

    At version 3 a workflow is part-way in it: the ids of its events and timeout are returned.
    """
    with _raw(dsn, schema) as conn:
        with conn.transaction():
            conn.execute(f'CREATE SCHEMA "{schema}"')
            # The previous release's bookkeeping, as its _migrate() created it.
            conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}".actorflow_migrations '
                "(version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            scripts = released_scripts("postgres", versions)
            for script, (version, name) in zip(scripts, LEGACY_VERSIONS, strict=False):
                conn.execute(script.encode())
                conn.execute(
                    "INSERT INTO actorflow_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                    (version, name, APPLIED_AT),
                )
        return _write_state(conn) if versions == len(LEGACY_VERSIONS) else {}


def _write_state(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """The state of a node that stopped part-way through, written with plain SQL."""
    insert_event = (
        "INSERT INTO workflow_events (topic, run_id, type, headers, created_at, shard_hash)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id"
    )
    with conn.transaction():
        values = ", ".join(["%s"] * 9)
        for record in (V2, OLD):
            conn.execute(f"INSERT INTO workflow_records ({RECORD_COLUMNS}) VALUES ({values})", record_row(record))  # noqa: S608
        for record in (V1, V2, OLD):
            conn.execute(
                f"INSERT INTO workflow_record_snapshots ({RECORD_COLUMNS}) VALUES ({values})",  # noqa: S608
                record_row(record),
            )
        # Acknowledged events, and the receivers' cursors at them.
        started = _returned_id(conn.execute(insert_event, event_row(V1)))
        old = _returned_id(conn.execute(insert_event, event_row(OLD)))
    with conn.transaction():
        conn.execute(
            "INSERT INTO workflow_cursors (topic, name, xid, id)"
            " SELECT topic, %s, xid, id FROM workflow_events WHERE id = %s",
            (f"{WORKFLOW}-1-consumer-1-of-1", started),
        )
        conn.execute(
            "INSERT INTO workflow_cursors (topic, name, xid, id)"
            " SELECT topic, %s, xid, id FROM workflow_events WHERE id = %s",
            (f"{WORKFLOW}-2-consumer-1-of-1", old),
        )
    with conn.transaction():  # the event still to handle, committed after the cursor's
        waiting = _returned_id(conn.execute(insert_event, event_row(V2)))
    with conn.transaction():
        conn.execute(
            "INSERT INTO workflow_outbox (id, workflow_name, run_id, type, headers, created_at)"
            " VALUES ('outbox-id-legacy', 'other', 'run-x', 1, '{\"k\":\"v\"}', %s)",
            (NOW,),
        )
        conn.execute("INSERT INTO workflow_error_counts (process, run_id, count) VALUES ('some-step', %s, 2)", (RUN,))
        timeout = _returned_id(
            conn.execute(
                "INSERT INTO workflow_timeouts (workflow_name, foreign_id, run_id, status, expire_at, created_at)"
                " VALUES (%s, 'item-a', %s, 2, %s, %s) RETURNING id",
                (WORKFLOW, RUN, NOW + timedelta(days=1), NOW),
            )
        )
        conn.execute("INSERT INTO workflow_in_flight (process, run_ids) VALUES ('some-step', '[\"run-z\"]')")
    return {"started": started, "old": old, "waiting": waiting, "timeout": timeout}


def _returned_id(cur: psycopg.Cursor[Any]) -> int:
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


def _bookkeeping(dsn: str, schema: str) -> list[tuple[Any, ...]]:
    with _raw(dsn, schema) as conn:
        return conn.execute("SELECT version, name, applied_at FROM actorflow_migrations ORDER BY version").fetchall()


@pytest.fixture
def legacy(pg_dsn: str, pg_schema: str) -> dict[str, int]:
    return build_legacy_schema(pg_dsn, pg_schema)


def test_the_runner_keeps_the_existing_bookkeeping_and_applies_only_what_is_new(legacy, pg_dsn, pg_schema):
    """Versions 1-3 are found recorded (their times kept); only the newer ones are applied, once."""
    assert migrate(pg_dsn, pg_schema) == NEW
    kept = _bookkeeping(pg_dsn, pg_schema)
    assert kept[:3] == [(v, name, APPLIED_AT) for v, name in LEGACY_VERSIONS]
    assert [v for v, _, _ in kept[3:]] == NEW
    assert migrate(pg_dsn, pg_schema) == []


def test_an_older_legacy_schema_gets_only_the_versions_it_lacks(pg_dsn, pg_schema):
    """A schema the previous release left at version 2: 3 and on are applied, recorded beside the kept 1 and 2."""
    build_legacy_schema(pg_dsn, pg_schema, versions=2)
    assert migrate(pg_dsn, pg_schema) == [3, *NEW]
    kept, (added, *_) = _bookkeeping(pg_dsn, pg_schema)[:2], _bookkeeping(pg_dsn, pg_schema)[2:]
    assert kept == [(v, name, APPLIED_AT) for v, name in LEGACY_VERSIONS[:2]]
    assert added[:2] == (3, "error_counts_by_run")
    assert added[2] > APPLIED_AT


def test_the_new_adapters_read_a_legacy_schema(legacy, pg_dsn, pg_schema, opened):
    """Records, snapshots, outbox, error counts, in-flight notes and timeouts read back unchanged."""
    store = opened(PostgresRecordStore(pg_dsn, schema=pg_schema))
    assert store.lookup(RUN) == V2
    assert store.snapshots(RUN) == [V1, V2]
    assert store.latest(WORKFLOW, "item-old") == OLD
    assert [r.run_id for r in store.list(WORKFLOW)] == [RUN, OLD_RUN]
    (outbox,) = store.list_outbox_events("other", 10)
    assert (outbox.id, outbox.run_id, dict(outbox.headers)) == ("outbox-id-legacy", "run-x", {"k": "v"})
    assert store.add_error("some-step", RUN) == 3  # the old count goes on
    assert store.unfinished_batch("some-step") == ["run-z"]

    timeouts = opened(PostgresTimeoutStore(pg_dsn, schema=pg_schema))
    (pending,) = timeouts.list(WORKFLOW)
    assert (pending.id, pending.run_id, pending.expire_at) == (legacy["timeout"], RUN, NOW + timedelta(days=1))
    assert (pending.index, pending.record_version) == (None, None)  # an old row: fires as it did
    assert timeouts.create(WORKFLOW, "item-b", "run-b", 2, NOW, index=1, record_version=3) > legacy["timeout"]
    assert [(t.index, t.record_version) for t in timeouts.list(WORKFLOW)] == [(None, None), (1, 3)]
    assert _bookkeeping(pg_dsn, pg_schema)[:3] == [(v, name, APPLIED_AT) for v, name in LEGACY_VERSIONS]


def test_a_workflow_on_a_legacy_schema_finishes_the_run_it_left(legacy, pg_dsn, pg_schema, opened):
    """The waiting event is delivered once (not lost, nothing before the cursor replayed); the run finishes."""
    streamer = opened(PostgresEventStreamer(pg_dsn, schema=pg_schema))
    store = opened(PostgresRecordStore(pg_dsn, schema=pg_schema))
    finish_the_legacy_run(streamer, store, legacy["waiting"])
    with _raw(pg_dsn, pg_schema) as conn:
        row = conn.execute("SELECT count(*) FROM workflow_events WHERE id > %s", (legacy["waiting"],)).fetchone()
    assert row is not None
    assert row[0] > 0  # the workflow's own events went into the same log, after the old ones


def test_the_db_migrate_command_on_a_legacy_schema_applies_only_what_is_new(legacy, pg_dsn, pg_schema):
    """`actorflow db migrate` on the previous release's schema: the newer versions, the old bookkeeping kept."""
    result = subprocess.run(
        [sys.executable, "-m", "actorflow.cli", "db", "migrate", "--dsn", pg_dsn, "--schema", pg_schema],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"applied migrations {', '.join(map(str, NEW))}" in result.stdout
    assert _bookkeeping(pg_dsn, pg_schema)[:3] == [(v, name, APPLIED_AT) for v, name in LEGACY_VERSIONS]
