"""Named adapter stacks for the command line (``--backend memory|sqlite|postgres|kafka``).

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

from actorflow._redact import redact
from actorflow.clock import Clock
from actorflow.protocols import EventStreamer, RecordStore, RoleScheduler, TimeoutStore

__all__ = ["BACKENDS", "Backend", "make_backend"]

BACKENDS = ("memory", "sqlite", "postgres", "kafka")


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


def _kafka(path: str | None, dsn: str | None, bootstrap_servers: str | None, clock: Clock | None) -> Backend:
    """Events on Kafka; records and timeouts in PostgreSQL when ``dsn`` is given, else in SQLite."""
    if not bootstrap_servers:
        msg = "the kafka backend needs --bootstrap-servers (or ACTORFLOW_BOOTSTRAP_SERVERS), e.g. localhost:9092"
        raise ValueError(msg)
    kafka = _module("kafka")
    memory = _module("memory")
    # Topics of their own: a demo or benchmark never reads an earlier one's events or offsets.
    streamer = kafka.KafkaEventStreamer(bootstrap_servers, f"actorflow-{uuid.uuid4().hex[:8]}-", clock=clock)
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
    ``dsn`` in a schema of its own (dropped by `Backend.close`). ``kafka`` sends events to
    the brokers ``bootstrap_servers`` (on topics of its own) and keeps records in
    PostgreSQL at ``dsn`` as ``postgres`` does, or else in SQLite as ``sqlite`` does.
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
    if name == "kafka":
        return _kafka(path, dsn, bootstrap_servers, clock)
    msg = f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)} (path={path!r}, dsn={redact(dsn or '')!r})"
    raise ValueError(msg)
