"""A file written by the previous release (schema 1-3, ``schema_migrations``) upgrades in place.

The file is built from the released migrations (checked unchanged, `tests.adapters.legacy`)
and that release's bookkeeping. Each test builds a file exactly as that code left it, writes a workflow's state into it with plain SQL, then
opens it with this release's adapters.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore, SqliteTimeoutStore, migrate
from tests.adapters.sql_schema import (
    LEGACY_VERSIONS,
    NOW,
    OLD,
    OLD_RUN,
    RUN,
    SQLITE_INDEXES,
    TABLES,
    V1,
    V2,
    WORKFLOW,
    event_row,
    finish_the_legacy_run,
    migrate_in_processes,
    new_versions,
    record_row,
    released_scripts,
    versions,
)

ALL = versions("sqlite")  # every version this release knows
NEW = new_versions("sqlite")  # those the previous release's files lack

# The previous release's bookkeeping table and its rows (microseconds since the epoch).
LEGACY_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at INTEGER NOT NULL
);
"""
APPLIED_AT = 1_700_000_000_000_000

OLD_TABLES = {"records", "snapshots", "outbox", "events", "cursors", "error_counts", "timeouts", "in_flight"}


def _micros(when: datetime) -> int:
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def build_legacy_file(path: Path, versions: int = 3) -> None:
    """A file as the previous release left it after ``versions`` migrations, with a workflow part-way in it."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")  # as the old adapters set it
        for script in released_scripts("sqlite", versions):
            conn.executescript(script)
        conn.executescript(LEGACY_BOOKKEEPING)
        conn.executemany(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            [(v, name, APPLIED_AT) for v, name in LEGACY_VERSIONS[:versions]],
        )
        if versions == len(LEGACY_VERSIONS):
            _write_state(conn)


def _write_state(conn: sqlite3.Connection) -> None:
    """The state of a node that stopped part-way through, written with plain SQL in the old tables."""
    columns = "run_id, workflow_name, foreign_id, run_state, status, object, created_at, updated_at, version"
    conn.execute("BEGIN")
    values = ", ".join("?" * 9)
    records = f"INSERT INTO records ({columns}) VALUES ({values})"  # noqa: S608 - fixed column names
    conn.executemany(records, [record_row(V2, _micros), record_row(OLD, _micros)])
    conn.executemany(
        f"INSERT INTO snapshots ({columns}) VALUES ({values})",  # noqa: S608
        [record_row(V1, _micros), record_row(V2, _micros), record_row(OLD, _micros)],
    )
    events = (
        "INSERT INTO events (id, topic, run_id, type, headers, created_at, shard_hash) VALUES (?, ?, ?, ?, ?, ?, ?)"
    )
    conn.executemany(
        events,
        [
            (1, *event_row(V1, _micros)),
            (2, *event_row(OLD, _micros)),
            (3, *event_row(V2, _micros)),
            (50, *event_row(OLD, _micros)),
        ],
    )
    conn.execute("DELETE FROM events WHERE id = 50")  # a later event, gone past the retention: ids stay above it
    conn.executemany(
        "INSERT INTO cursors (topic, name, position) VALUES (?, ?, ?)",
        [(f"{WORKFLOW}-1", f"{WORKFLOW}-1-consumer-1-of-1", 1), (f"{WORKFLOW}-2", f"{WORKFLOW}-2-consumer-1-of-1", 2)],
    )
    conn.execute(
        "INSERT INTO outbox (id, workflow_name, run_id, type, headers, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        ("outbox-id-legacy", "other", "run-x", 1, '{"k":"v"}', _micros(NOW)),
    )
    conn.execute("INSERT INTO error_counts (process, run_id, count) VALUES ('some-step', ?, 2)", (RUN,))
    conn.executemany(
        "INSERT INTO timeouts (id, workflow_name, foreign_id, run_id, status, completed, expire_at, created_at)"
        " VALUES (?, ?, 'item-a', ?, 2, 0, ?, ?)",
        [(7, WORKFLOW, RUN, _micros(NOW + timedelta(days=1)), _micros(NOW)), (8, WORKFLOW, RUN, 0, 0)],
    )
    conn.execute("DELETE FROM timeouts WHERE id = 8")  # a cancelled timeout
    conn.execute("INSERT INTO in_flight (process, run_ids) VALUES ('some-step', '[\"run-z\"]')")
    conn.execute("COMMIT")


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    path = tmp_path / "legacy.db"
    build_legacy_file(path)
    return path


def _rows(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


def _names(path: Path, kind: str) -> set[str]:
    return {name for (name,) in _rows(path, "SELECT name FROM sqlite_master WHERE type = ?", kind)}


def test_the_new_adapters_read_a_legacy_file_after_upgrading_it(legacy, opened):
    """Records, snapshots, outbox, error counts, in-flight notes and timeouts read back after the renames."""
    store = opened(SqliteRecordStore(legacy))
    assert store.lookup(RUN) == V2  # the first use migrates the file
    assert store.db.applied == NEW
    assert [r.meta.version for r in store.snapshots(RUN)] == [1, 2]
    assert store.snapshots(RUN) == [V1, V2]
    assert store.latest(WORKFLOW, "item-old") == OLD
    assert [r.run_id for r in store.list(WORKFLOW)] == [RUN, OLD_RUN]
    (outbox,) = store.list_outbox_events("other", 10)
    assert (outbox.id, outbox.run_id, dict(outbox.headers)) == ("outbox-id-legacy", "run-x", {"k": "v"})
    assert store.add_error("some-step", RUN) == 3  # the old count goes on
    assert store.unfinished_batch("some-step") == ["run-z"]

    timeouts = opened(SqliteTimeoutStore(legacy))
    (pending,) = timeouts.list(WORKFLOW)
    assert (pending.id, pending.run_id, pending.expire_at) == (7, RUN, NOW + timedelta(days=1))
    assert (pending.index, pending.record_version) == (None, None)  # an old row: fires as it did
    # AUTOINCREMENT goes on after the highest id ever used (8, cancelled), not after the highest left.
    assert timeouts.create(WORKFLOW, "item-b", "run-b", 2, NOW, index=1, record_version=3) == 9
    assert [(t.index, t.record_version) for t in timeouts.list(WORKFLOW)] == [(None, None), (1, 3)]


def test_the_upgrade_renames_everything_and_adopts_the_old_bookkeeping(legacy):
    """Version 4 is recorded beside the adopted 1-3 (their times kept); old tables and bookkeeping are gone."""
    assert migrate(legacy) == NEW
    assert _rows(legacy, "SELECT version, name, applied_at FROM actorflow_migrations WHERE version < 4") == [
        (v, name, APPLIED_AT) for v, name in LEGACY_VERSIONS
    ]
    ((name, applied_at),) = _rows(legacy, "SELECT name, applied_at FROM actorflow_migrations WHERE version = 4")
    assert name == "postgres_names"
    assert abs(applied_at - _micros(datetime.now(UTC))) < 60_000_000  # microseconds, written just now
    assert _names(legacy, "table") == {*TABLES, "actorflow_migrations", "sqlite_sequence"}
    assert not _names(legacy, "table") & {*OLD_TABLES, "schema_migrations"}
    indexes = {n for n in _names(legacy, "index") if not n.startswith("sqlite_autoindex_")}
    assert indexes == SQLITE_INDEXES
    # The AUTOINCREMENT counters moved with their tables.
    assert dict(_rows(legacy, "SELECT name, seq FROM sqlite_sequence")) == {
        "workflow_events": 50,
        "workflow_timeouts": 8,
    }
    assert migrate(legacy) == []  # opening again applies nothing


def test_a_workflow_on_a_legacy_file_finishes_the_run_it_left(legacy, opened):
    """The waiting event is delivered once (not lost, nothing before the cursor replayed); the run finishes."""
    streamer, store = opened(SqliteEventStreamer(legacy)), opened(SqliteRecordStore(legacy))
    finish_the_legacy_run(streamer, store, 3)  # the cursor is at 2: only event 3 comes
    new_ids = [i for (i,) in _rows(legacy, "SELECT id FROM workflow_events WHERE id > 3 ORDER BY id")]
    assert new_ids
    assert new_ids[0] == 51  # after the highest id ever used (50), not the highest left (3)
    assert _rows(legacy, "SELECT position FROM workflow_cursors WHERE name = ?", f"{WORKFLOW}-2-consumer-1-of-1") == [
        (3,)
    ]


def test_an_older_legacy_file_is_adopted_before_the_pending_versions_are_chosen(tmp_path):
    """A file the previous release left at version 2: the adopted bookkeeping makes 3 and 4 pending, not 1 and 2."""
    path = tmp_path / "older.db"
    build_legacy_file(path, versions=2)
    assert migrate(path) == [3, *NEW]
    assert [v for (v,) in _rows(path, "SELECT version FROM actorflow_migrations ORDER BY version")] == ALL
    assert "schema_migrations" not in _names(path, "table")


def test_processes_opening_a_legacy_file_at_once_upgrade_it_once(legacy):
    """Four processes opening one legacy file together: one applies version 4, the others find it done."""
    assert migrate_in_processes(legacy) == [str(NEW), "[]", "[]", "[]"]
    assert _rows(legacy, "SELECT count(*) FROM actorflow_migrations") == [(len(ALL),)]


def test_the_db_migrate_command_upgrades_a_legacy_file(legacy):
    """`actorflow db migrate --dsn sqlite:///PATH` upgrades the file in place, like the adapters do."""
    result = subprocess.run(
        [sys.executable, "-m", "actorflow.cli", "db", "migrate", "--dsn", f"sqlite:///{legacy}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"database {legacy}: applied migrations {', '.join(map(str, NEW))}" in result.stdout
    assert "schema_migrations" not in _names(legacy, "table")
    assert migrate(legacy) == []


def test_an_older_release_refuses_an_upgraded_file_instead_of_starting_it_afresh(legacy):
    """The previous release's own migration steps, on an upgraded file, find version 4 and refuse it.

    Without the ``schema_migrations`` view it would find no bookkeeping table and create
    empty tables under the old names beside the real ones.
    """
    migrate(legacy)
    conn = sqlite3.connect(legacy)
    try:
        # Exactly what the previous release ran when it opened a file (its _db.py `_migrate`).
        found = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
        assert found.fetchone()[0] == 0
        conn.execute(LEGACY_BOOKKEEPING)  # CREATE TABLE IF NOT EXISTS: the view stands in, nothing is made
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        conn.close()
    assert versions == ALL  # newer than its newest (3): it raises "upgrade actorflow"
    assert not _names(legacy, "table") & OLD_TABLES
