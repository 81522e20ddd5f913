"""The SQLite file itself: lazy connections, pragmas, versioned migrations, clear errors on bad paths."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from datetime import UTC, datetime

import pytest

import actorflow as af
from actorflow.adapters.sqlite import (
    SqliteError,
    SqliteEventStreamer,
    SqliteRecordStore,
    SqliteTimeoutStore,
    migrate,
)
from actorflow.adapters.sqlite._db import Database
from actorflow.adapters.sqlite._schema import migrations
from actorflow.testing.adaptertest._records import dummy_record
from tests.adapters.sql_schema import SQLITE_INDEXES, TABLES, migrate_in_processes, versions

ADAPTERS = [SqliteRecordStore, SqliteTimeoutStore, SqliteEventStreamer]


def _first_use(adapter: object) -> None:
    """Make ``adapter`` touch its database."""
    if isinstance(adapter, SqliteRecordStore):
        adapter.store(dummy_record())
    elif isinstance(adapter, SqliteTimeoutStore):
        adapter.list("w")
    else:
        assert isinstance(adapter, SqliteEventStreamer)
        adapter.new_receiver("t", "n")


@pytest.mark.parametrize("cls", ADAPTERS)
def test_constructing_an_adapter_opens_nothing(tmp_path, cls):
    """No file and no connection exist until the adapter is first used."""
    adapter = cls(tmp_path / "lazy.db")
    assert not (tmp_path / "lazy.db").exists()
    assert adapter.db.open_connections() == 0
    adapter.close()


def test_the_file_is_in_wal_mode_with_full_sync_by_default(tmp_path):
    """Connections use WAL and synchronous=FULL (2) unless told otherwise."""
    store = SqliteRecordStore(tmp_path / "pragmas.db")
    try:
        conn = store.db.connection()
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)
    finally:
        store.close()
    relaxed = SqliteRecordStore(tmp_path / "pragmas.db", synchronous="normal")
    try:
        assert relaxed.db.connection().execute("PRAGMA synchronous").fetchone() == (1,)
    finally:
        relaxed.close()


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"synchronous": "SOMETIMES"}, "synchronous"), ({"busy_timeout": 0}, "busy_timeout")]
)
def test_a_bad_setting_is_a_value_error_naming_it(tmp_path, kwargs, field):
    """Invalid keyword settings are refused at construction, by name."""
    with pytest.raises(ValueError, match=field):
        SqliteRecordStore(tmp_path / "x.db", **kwargs)


@pytest.mark.parametrize("path", [":memory:", "", "file:x.db?mode=memory"])
def test_an_in_memory_database_is_refused(path):
    """Connections are per thread, so a private in-memory database cannot work: ValueError at construction."""
    with pytest.raises(ValueError, match="database file"):
        SqliteRecordStore(path)


def test_close_closes_the_connections_of_every_thread(tmp_path):
    """Connections opened by other threads (still alive) are closed by close(); the store reopens lazily."""
    store = SqliteRecordStore(tmp_path / "threads.db")
    opened, release = threading.Barrier(4), threading.Event()

    def use() -> None:
        store.list("w")
        opened.wait(timeout=10)
        release.wait(timeout=10)

    threads = [threading.Thread(target=use) for _ in range(3)]
    for t in threads:
        t.start()
    opened.wait(timeout=10)
    assert store.db.open_connections() == 3
    store.close()
    assert store.db.open_connections() == 0
    release.set()
    for t in threads:
        t.join(timeout=10)
    assert store.list("w") == []  # usable again
    store.close()


def test_a_thread_that_ends_closes_its_connection(tmp_path):
    """A connection belongs to its thread: when the thread ends, the connection is closed."""
    store = SqliteRecordStore(tmp_path / "ending.db")
    thread = threading.Thread(target=store.list, args=("w",))
    thread.start()
    thread.join(timeout=10)
    assert store.db.open_connections() == 0
    store.close()


# -- migrations -------------------------------------------------------------------------------


def test_migrate_applies_each_version_once(tmp_path):
    """migrate() creates the tables and records each version; a second call applies nothing."""
    path = tmp_path / "migrated.db"
    assert migrate(path) == [m.version for m in migrations()] == versions("sqlite")
    assert migrate(path) == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version, name FROM actorflow_migrations").fetchall() == [
            (1, "initial"),
            (2, "in_flight"),
            (3, "error_counts_by_run"),
            (4, "postgres_names"),
            (5, "role_leases"),
            (6, "nodes"),
            (7, "timeout_visits"),
            (8, "snapshots_in_creation_order"),
        ]
        indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"actorflow_migrations", "sqlite_sequence", *TABLES}
    assert {name for name in indexes if not name.startswith("sqlite_autoindex_")} == SQLITE_INDEXES


def test_adapters_migrate_the_file_on_first_use(tmp_path):
    """Without migrate(), the first adapter to touch the file creates the tables."""
    path = tmp_path / "auto.db"
    store = SqliteTimeoutStore(path)
    try:
        assert store.list("w") == []
    finally:
        store.close()
    assert migrate(path) == []


def test_processes_opening_a_new_file_at_once_migrate_it_once(tmp_path):
    """Four processes migrating one fresh file together all succeed; the version is recorded once."""
    path = tmp_path / "race.db"
    assert migrate_in_processes(path) == [str(versions("sqlite")), "[]", "[]", "[]"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM actorflow_migrations").fetchone() == (len(migrations()),)


def test_a_newer_schema_is_refused(tmp_path):
    """A file migrated by a newer actorflow is not used: SqliteError says to upgrade."""
    path = tmp_path / "newer.db"
    migrate(path)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO actorflow_migrations VALUES (99, 'future', 0)")
    store = SqliteRecordStore(path)
    with pytest.raises(SqliteError, match="upgrade actorflow"):
        store.list("w")
    store.close()


# -- bad paths --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ADAPTERS)
def test_a_missing_directory_is_a_clear_error_at_first_use(tmp_path, cls):
    """A path in a directory that does not exist: SqliteError naming it and the fix, when first used."""
    path = tmp_path / "no-such-dir" / "x.db"
    adapter = cls(path)
    with pytest.raises(SqliteError) as caught:
        _first_use(adapter)
    assert isinstance(caught.value, af.ActorflowError)
    assert str(tmp_path / "no-such-dir") in str(caught.value)
    assert "create it first" in str(caught.value)
    assert caught.value.path == str(path)
    adapter.close()


@pytest.mark.parametrize("cls", ADAPTERS)
def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path, cls):
    """A text file as the database: SqliteError saying so (the driver's error kept as the cause)."""
    path = tmp_path / "notes.txt"
    path.write_text("these are not the tables you are looking for\n" * 100)
    adapter = cls(path)
    with pytest.raises(SqliteError, match="is not a SQLite database") as caught:
        _first_use(adapter)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    assert adapter.db.open_connections() == 0
    adapter.close()


def test_sqlite_error_is_public_under_the_adapter_package():
    """The error's module is the public one, so tracebacks and docs name an importable class."""
    assert SqliteError.__module__ == "actorflow.adapters.sqlite"


# -- unreadable timeouts ----------------------------------------------------------------------


def test_an_unreadable_timeout_row_is_skipped_with_a_warning(tmp_path, caplog):
    """A timeout row with a text expiry is logged and left out; the others are listed."""
    store = SqliteTimeoutStore(tmp_path / "timeouts.db")
    try:
        now = datetime.now(UTC)
        good = store.create("w", "f", "run-good", 1, now)
        bad = store.create("w", "f", "run-bad", 1, now)
        with sqlite3.connect(tmp_path / "timeouts.db") as conn:
            conn.execute("UPDATE workflow_timeouts SET expire_at = 'tomorrow' WHERE id = ?", (bad,))
        with caplog.at_level(logging.WARNING, logger="actorflow.adapters.sqlite"):
            assert [t.id for t in store.list("w")] == [good]
        assert f"skipped unreadable timeout {bad}" in caplog.text
    finally:
        store.close()


# -- group commit -----------------------------------------------------------------------------


def _wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.001)


def test_writes_queued_behind_a_commit_share_the_next_one_and_fail_alone(tmp_path):
    """Writers queued while a commit runs are committed together; one that raises undoes only its own rows."""
    db = Database(tmp_path / "group.db")
    db.write(lambda conn: conn.execute("CREATE TABLE t (v TEXT)").close())
    release = threading.Event()
    ran_on: list[int] = []
    outcomes: dict[str, BaseException | None] = {}

    def blocking(conn: sqlite3.Connection) -> None:
        release.wait(timeout=10)
        conn.execute("INSERT INTO t VALUES ('first')").close()

    def insert(value: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            ran_on.append(id(conn))
            conn.execute("INSERT INTO t VALUES (?)", (value,)).close()
            if value == "bad":
                raise ValueError("refused")

        try:
            db.write(work)
        except ValueError as exc:
            outcomes[value] = exc
        else:
            outcomes[value] = None

    leader = threading.Thread(target=db.write, args=(blocking,))
    leader.start()
    _wait_until(lambda: db.hub.leading)
    writers = [threading.Thread(target=insert, args=(v,)) for v in ("a", "bad", "b")]
    for t in writers:
        t.start()
    _wait_until(lambda: db.hub.queued == 3)
    release.set()
    for t in (leader, *writers):
        t.join(timeout=10)

    assert outcomes["a"] is None
    assert outcomes["b"] is None
    assert isinstance(outcomes["bad"], ValueError)
    assert len(set(ran_on)) == 1, "the three queued writes ran in one transaction, on the next leader's connection"
    assert sorted(v for (v,) in db.fetch("SELECT v FROM t")) == ["a", "b", "first"]
    db.close()


def _hold_the_write_lock(path: str) -> sqlite3.Connection:
    """Another connection (as another process would) holding the file's write lock."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_a_write_waits_for_another_process_to_commit_then_goes_in(tmp_path, monkeypatch):
    """The write lock, held elsewhere, is retried in short pauses and taken once the holder commits."""
    from actorflow.adapters.sqlite import _hub

    db = Database(tmp_path / "busy.db", busy_timeout=30)
    db.write(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)").close())
    holder = _hold_the_write_lock(db.path)
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:  # the writer has found the lock taken and is retrying: let it go
            holder.execute("COMMIT")

    monkeypatch.setattr(_hub, "_pause", pause)
    db.write(lambda conn: conn.execute("INSERT INTO t VALUES (1)").close())
    assert len(pauses) == 3 and max(pauses) < 0.01, pauses  # short pauses, not SQLite's 1-100 ms sleeps
    assert db.connection().execute("SELECT x FROM t").fetchall() == [(1,)]
    assert db.connection().execute("PRAGMA busy_timeout").fetchone() == (30_000,), "the busy timeout is restored"
    holder.close()
    db.close()


def test_a_write_gives_up_after_the_busy_timeout_with_a_clear_error(tmp_path):
    """A lock held past busy_timeout: SqliteError naming the lock, nothing written, the connection usable."""
    db = Database(tmp_path / "stuck.db", busy_timeout=0.2)
    db.write(lambda conn: conn.execute("CREATE TABLE t (x INTEGER)").close())
    holder = _hold_the_write_lock(db.path)
    with pytest.raises(SqliteError, match="locked by another process past the busy timeout"):
        db.write(lambda conn: conn.execute("INSERT INTO t VALUES (1)").close())
    holder.execute("ROLLBACK")
    db.write(lambda conn: conn.execute("INSERT INTO t VALUES (2)").close())
    assert db.connection().execute("SELECT x FROM t").fetchall() == [(2,)]
    holder.close()
    db.close()
