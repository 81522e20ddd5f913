"""Named adapter stacks for the command line (``--backend memory|sqlite|postgres|mysql|kafka``).

Adapters are imported by name at run time: the core never imports an adapter module
statically, so it keeps working without the optional extras.
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from actorflow._redact import redact
from actorflow.clock import Clock
from actorflow.protocols import EventStreamer, RecordStore, RoleScheduler, TimeoutStore

__all__ = ["BACKENDS", "Backend", "make_backend"]

BACKENDS = ("memory", "sqlite", "postgres", "kafka", "mysql")


@dataclasses.dataclass(frozen=True)
class Backend:
    """The adapters one workflow is built on.

    Attributes:
        location: where the data lives, for people (a file path; empty in memory).
        cleanup: called by `close` after the adapters are closed (removes a temporary
            database made for the demo or the benchmark).
    """

    event_streamer: EventStreamer
    record_store: RecordStore
    role_scheduler: RoleScheduler
    timeout_store: TimeoutStore
    location: str = ""
    cleanup: Callable[[], None] | None = None

    def close(self) -> None:
        """Close every adapter that holds connections, then run the cleanup."""
        for adapter in (self.event_streamer, self.record_store, self.role_scheduler, self.timeout_store):
            close = getattr(adapter, "close", None)
            if callable(close):
                close()
        if self.cleanup is not None:
            self.cleanup()


def _module(name: str) -> Any:
    return importlib.import_module(f"actorflow.adapters.{name}")


def _temporary_database(path: str | None) -> tuple[str, Callable[[], None] | None]:
    """``path``, or a new file in a temporary directory and the cleanup that removes it."""
    if path is not None:
        return path, None
    # A fresh file for a demo or a benchmark; removed on close, or at exit at the latest.
    folder = tempfile.mkdtemp(prefix="actorflow-")

    def cleanup() -> None:
        shutil.rmtree(folder, ignore_errors=True)

    atexit.register(cleanup)
    return str(Path(folder) / "actorflow.db"), cleanup


def _postgres_schema(dsn: str | None) -> tuple[str, str, Callable[[], None]]:
    """A DSN, a fresh schema for this demo or benchmark, and the cleanup that drops it."""
    if not dsn:
        msg = "the postgres backend needs --dsn (or ACTORFLOW_DSN), e.g. postgresql://user@localhost:5432/db"
        raise ValueError(msg)
    postgres = _module("postgres")
    schema = f"actorflow_{uuid.uuid4().hex[:10]}"

    def cleanup() -> None:
        postgres.drop_schema(dsn, schema)

    return dsn, schema, cleanup


def _postgres(dsn: str | None, clock: Clock | None) -> Backend:
    """Everything in PostgreSQL, in a schema of its own: one commit per transition."""
    dsn, schema, cleanup = _postgres_schema(dsn)
    postgres = _module("postgres")
    return Backend(
        postgres.PostgresEventStreamer(dsn, schema=schema, clock=clock),
        postgres.PostgresRecordStore(dsn, schema=schema),
        _module("memory").MemoryRoleScheduler(),  # one node: roles in memory
        postgres.PostgresTimeoutStore(dsn, schema=schema),
        location=f"{redact(dsn)} (schema {schema}, dropped at the end)",
        cleanup=cleanup,
    )


def _mysql_admin(dsn: str, what: str, statement: str) -> None:
    """Run one administrative ``statement`` (CREATE or DROP DATABASE) on the server of ``dsn``.

    A failure is the adapter's `MysqlError` (exit status 4 on the command line), its message redacted.
    """
    mysql = _module("mysql")
    pymysql = importlib.import_module("pymysql")
    parts = urlsplit(dsn.strip())
    try:
        conn = pymysql.connect(
            host=parts.hostname,
            port=parts.port or 3306,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            database=unquote(parts.path.removeprefix("/")),
            autocommit=True,
            connect_timeout=10,
        )
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()
    except pymysql.err.Error as exc:
        msg = redact(f"{what} on the MySQL server at {parts.hostname}:{parts.port or 3306} ({redact(dsn)!r}): {exc}")
        raise mysql.MysqlError(msg) from exc


def _mysql_database(dsn: str | None) -> tuple[str, str, Callable[[], None]]:
    """A DSN naming a fresh database (made now, on the server of ``dsn``), its name, and the cleanup that drops it.

    The DSN's own database is only connected to: the demo or benchmark makes its tables
    in a database of its own (which needs the CREATE privilege), as ``postgres`` does in a
    schema of its own.
    """
    if not dsn:
        msg = "the mysql backend needs --dsn (or ACTORFLOW_DSN), e.g. mysql://user@localhost:3306/db"
        raise ValueError(msg)
    mysql = _module("mysql")
    mysql.MysqlRecordStore(dsn).close()  # the DSN checked (MysqlConfigError), nothing connected
    database = f"actorflow_{uuid.uuid4().hex[:10]}"
    _mysql_admin(dsn, f"cannot create the database {database}", f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    parts = urlsplit(dsn.strip())
    fresh = urlunsplit((parts.scheme, parts.netloc, f"/{database}", "", ""))

    def cleanup() -> None:
        _mysql_admin(dsn, f"cannot drop the database {database}", f"DROP DATABASE IF EXISTS `{database}`")

    return fresh, database, cleanup


def _mysql(dsn: str | None, clock: Clock | None) -> Backend:
    """Everything in MySQL/MariaDB, in a database of its own: one commit per transition."""
    fresh, database, cleanup = _mysql_database(dsn)
    mysql = _module("mysql")
    return Backend(
        mysql.MysqlEventStreamer(fresh, clock=clock),
        mysql.MysqlRecordStore(fresh),
        _module("memory").MemoryRoleScheduler(),  # one node: roles in memory
        mysql.MysqlTimeoutStore(fresh),
        location=f"{redact(dsn or '')} (database {database}, dropped at the end)",
        cleanup=cleanup,
    )


def _kafka(path: str | None, dsn: str | None, bootstrap_servers: str | None, clock: Clock | None) -> Backend:
    """Events on Kafka; records and timeouts at ``dsn`` (PostgreSQL or MySQL, by scheme) if given, else in SQLite."""
    if not bootstrap_servers:
        msg = "the kafka backend needs --bootstrap-servers (or ACTORFLOW_BOOTSTRAP_SERVERS), e.g. localhost:9092"
        raise ValueError(msg)
    kafka = _module("kafka")
    memory = _module("memory")
    # Topics of their own: a demo or benchmark never reads an earlier one's events or offsets.
    streamer = kafka.KafkaEventStreamer(bootstrap_servers, f"actorflow-{uuid.uuid4().hex[:8]}-", clock=clock)
    if dsn and dsn.strip().lower().startswith("mysql"):
        fresh, database, cleanup = _mysql_database(dsn)
        mysql = _module("mysql")
        return Backend(
            streamer,
            mysql.MysqlRecordStore(fresh),
            memory.MemoryRoleScheduler(),
            mysql.MysqlTimeoutStore(fresh),
            location=f"{bootstrap_servers} + {redact(dsn)} (database {database}, dropped at the end)",
            cleanup=cleanup,
        )
    if dsn:
        dsn, schema, cleanup = _postgres_schema(dsn)
        postgres = _module("postgres")
        return Backend(
            streamer,
            postgres.PostgresRecordStore(dsn, schema=schema),
            memory.MemoryRoleScheduler(),
            postgres.PostgresTimeoutStore(dsn, schema=schema),
            location=f"{bootstrap_servers} + {redact(dsn)} (schema {schema}, dropped at the end)",
            cleanup=cleanup,
        )
    sqlite = _module("sqlite")
    path, file_cleanup = _temporary_database(path)
    return Backend(
        streamer,
        sqlite.SqliteRecordStore(path),
        memory.MemoryRoleScheduler(),
        sqlite.SqliteTimeoutStore(path),
        location=f"{bootstrap_servers} + {path}",
        cleanup=file_cleanup,
    )


def _sqlite(path: str | None, clock: Clock | None) -> Backend:
    sqlite = _module("sqlite")
    path, cleanup = _temporary_database(path)
    return Backend(
        sqlite.SqliteEventStreamer(path, clock=clock),
        sqlite.SqliteRecordStore(path),
        _module("memory").MemoryRoleScheduler(),  # one node: roles in memory
        sqlite.SqliteTimeoutStore(path),
        location=path,
        cleanup=cleanup,
    )


def make_backend(
    name: str,
    *,
    path: str | None = None,
    dsn: str | None = None,
    clock: Clock | None = None,
    bootstrap_servers: str | None = None,
) -> Backend:
    """Fresh adapters of the backend ``name``.

    ``sqlite`` uses the database file ``path``, or a new file in a temporary directory
    (removed by `Backend.close`) when none is given. ``postgres`` keeps everything at
    ``dsn`` in a schema of its own (dropped by `Backend.close`); ``mysql`` keeps everything
    on the server of ``dsn`` (a ``mysql://`` DSN) in a database of its own (made now,
    dropped by `Backend.close`). ``kafka`` sends events to the brokers
    ``bootstrap_servers`` (on topics of its own) and keeps records at ``dsn`` as
    ``postgres`` or ``mysql`` does (by the DSN's scheme), or else in SQLite as ``sqlite`` does.
    """
    if name == "memory":
        memory = _module("memory")
        return Backend(
            memory.MemoryEventStreamer(clock=clock),
            memory.MemoryRecordStore(),
            memory.MemoryRoleScheduler(),
            memory.MemoryTimeoutStore(),
        )
    if name == "sqlite":
        return _sqlite(path, clock)
    if name == "postgres":
        return _postgres(dsn, clock)
    if name == "mysql":
        return _mysql(dsn, clock)
    if name == "kafka":
        return _kafka(path, dsn, bootstrap_servers, clock)
    msg = f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)} (path={path!r}, dsn={redact(dsn or '')!r})"
    raise ValueError(msg)
