"""The SQL of the PostgreSQL adapters (``queries.sql``, ``migrations/``), migrating a schema, dropping one.

The files are read once, through `importlib.resources` (so they work from a wheel), by
the loaders the SQLite adapters use too (``adapters/_sql``). The migrations are applied
by the shared runner, under an advisory lock held for the transaction that applies them.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

import psycopg
from psycopg import sql

from .._sql import RECORD_COLUMNS
from .._sql.migrations import Migration, apply_migrations, load_migrations
from .._sql.queries import load_queries
from ._connect import application_name, check_schema, connect_once, conninfo
from ._errors import PostgresError, logger, wrap_exceptions

__all__ = ["QUERIES", "PostgresSession", "drop_schema", "migrate", "migrate_on", "migrations"]

_PACKAGE = __name__.rpartition(".")[0]

QUERIES = load_queries(resources.files(_PACKAGE) / "queries.sql", placeholder="%s")
"""Every named query of ``queries.sql`` (psycopg placeholders), the record columns filled in."""


def _reading_events(query: str, *, along: bool, cut: str) -> str:
    """``read_events`` alone, or with each event's record (its `RECORD_COLUMNS` after the event's), below ``cut``."""
    if not along:
        return query.format(along_outer="", along_inner="", along_join="", along_nulls="", cut=cut)
    return query.format(
        along_outer="".join(f", r.rec_{c}" for c in RECORD_COLUMNS),
        along_inner="".join(f", rec.{c} AS rec_{c}" for c in RECORD_COLUMNS),
        along_join=" LEFT JOIN workflow_records rec ON rec.run_id = e.run_id",
        along_nulls=", NULL" * len(RECORD_COLUMNS),
        cut=cut,
    )


# Four forms: with or without the records, below the server-wide xmin cut (the fast path)
# or below the refined one that ignores the transactions that cannot write this schema ("..._refined").
_READ_EVENTS = QUERIES["read_events"]
for _suffix, _cut in (("", QUERIES["events_cut"]), ("_refined", QUERIES["events_cut_refined"])):
    QUERIES[f"read_events_along{_suffix}"] = _reading_events(_READ_EVENTS, along=True, cut=_cut)
    QUERIES[f"read_events{_suffix}"] = _reading_events(_READ_EVENTS, along=False, cut=_cut)
QUERIES["oldest_transaction"] = QUERIES["oldest_transaction"].format(cut=QUERIES["events_cut_refined"])


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """The schema versions this release knows, oldest first."""
    return load_migrations(resources.files(_PACKAGE) / "migrations", dialect="PostgreSQL")


class PostgresSession:
    """A psycopg connection as the migration runner's `Session`."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, query: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        self._conn.execute(query, params or None)

    def fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one query."""
        return self._conn.execute(query, params or None).fetchall()

    def run_script(self, script: str) -> None:
        """Run a migration script, every statement in it, in the caller's transaction.

        Sent as bytes without parameters: the simple query protocol runs several
        statements, and a ``%`` in the script is not read as a placeholder.
        """
        self._conn.execute(script.encode())


def _lock_key(schema: str) -> int:
    """The advisory lock of ``schema``'s migrations (the same in every release, so old and new exclude each other)."""
    return int.from_bytes(hashlib.sha256(f"actorflow:{schema}".encode()).digest()[:8], "big", signed=True)


def _with_schema(name: str, schema: str) -> sql.Composed:
    """The named query ``name`` with ``{schema}`` filled in as a quoted identifier."""
    return sql.SQL(QUERIES[name]).format(schema=sql.Identifier(schema))


def migrate_on(conn: psycopg.Connection[Any], schema: str) -> list[int]:
    """Create ``schema`` if needed and apply the migrations it lacks, on ``conn``; the versions applied now.

    One transaction under the schema's advisory lock: processes starting together apply
    each version once, and a schema newer than this release is refused (`PostgresError`)
    before anything is applied. ``conn``'s ``search_path`` is ``schema``.
    """
    with conn.transaction():
        conn.execute(QUERIES["wait_for_locks"])  # another migrator may take a while
        conn.execute(QUERIES["lock_schema"], (_lock_key(schema),))
        conn.execute(_with_schema("create_schema", schema))
        applied = apply_migrations(
            PostgresSession(conn),
            QUERIES,
            migrations(),
            where=f"the PostgreSQL schema {schema}",
            error=PostgresError,
        )
    names = {m.version: m.name for m in migrations()}
    for version in applied:
        logger.info("schema %s: applied schema version %d (%s)", schema, version, names[version])
    return applied


def migrate(dsn: str, schema: str = "public") -> list[int]:
    """Create the schema and apply every migration not applied yet; returns those applied.

    Safe to run from many processes at once: an advisory lock serialises them.
    """
    check_schema(schema)
    info = conninfo(dsn, schema)
    with connect_once(info, dsn) as conn, wrap_exceptions("migration"):
        return migrate_on(conn, schema)


def drop_schema(dsn: str, schema: str) -> None:
    """Drop ``schema`` and everything in it, cutting this library's sessions on it first."""
    check_schema(schema)
    info = conninfo(dsn, schema)
    with connect_once(info, dsn) as conn, wrap_exceptions("dropping a schema"):
        conn.execute(QUERIES["terminate_schema_sessions"], (application_name(schema),))
        conn.execute(_with_schema("drop_schema", schema))
