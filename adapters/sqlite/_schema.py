"""The SQL of the SQLite adapters (``queries.sql``, ``migrations/``) and applying the migrations.

The files are read once, through `importlib.resources` (so they work from a wheel), by
the loaders the PostgreSQL adapters use too (``adapters/_sql``). The migrations are
applied by the shared runner, here under SQLite's write lock (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from .._sql.migrations import Migration, apply_migrations, load_migrations, needs_migrating
from .._sql.queries import load_queries
from ._hub import immediate_transaction

__all__ = ["SqliteSession", "migrate", "migrations", "queries", "split_statements"]

_PACKAGE = __name__.rpartition(".")[0]

logger = logging.getLogger("actorflow.adapters.sqlite")


@functools.cache
def queries() -> dict[str, str]:
    """Every named query of ``queries.sql`` (``?`` placeholders), the record columns filled in."""
    return load_queries(resources.files(_PACKAGE) / "queries.sql", placeholder="?")


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """The schema versions this release knows, oldest first."""
    return load_migrations(resources.files(_PACKAGE) / "migrations", dialect="SQLite")


def split_statements(script: str) -> tuple[str, ...]:
    """The statements of ``script``, split where SQLite itself says a statement is complete.

    `sqlite3.complete_statement` understands strings, comments and trigger bodies, so a
    ``;`` inside them does not split a statement. (``executescript`` cannot be used: it
    commits the caller's transaction first.)
    """
    statements: list[str] = []
    lines: list[str] = []
    for line in script.splitlines():
        lines.append(line)
        text = "\n".join(lines)
        if sqlite3.complete_statement(text):
            statements.append(text.strip())
            lines = []
    if any(line.strip() and not line.lstrip().startswith("--") for line in lines):
        msg = f"the SQL script ends with an incomplete statement: {' '.join(lines)[:80]!r}"
        raise ValueError(msg)
    return tuple(statements)


class SqliteSession:
    """A sqlite3 connection as the migration runner's `Session`."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, query: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        self._connection.execute(query, tuple(params)).close()

    def fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one query."""
        return self._connection.execute(query, tuple(params)).fetchall()

    def run_script(self, script: str) -> None:
        """Run the statements of ``script`` one by one, inside the caller's transaction."""
        for statement in split_statements(script):
            self._connection.execute(statement).close()


def migrate(connection: sqlite3.Connection, *, where: str, error: Callable[[str], Exception]) -> list[int]:
    """Apply the migrations the file lacks; the versions applied now.

    Looks first without a lock (a file up to date costs two small reads), then, only if
    something is pending, applies it inside ``BEGIN IMMEDIATE``, which one connection
    of one process holds at a time: processes opening a new file together apply each
    version once. ``error`` makes the adapter's error for a file newer than this release.
    """
    session = SqliteSession(connection)
    q, known = queries(), migrations()
    if not needs_migrating(session, q, known, where=where, error=error):
        return []
    with immediate_transaction(connection):
        applied = apply_migrations(session, q, known, where=where, error=error)
    names = {m.version: m.name for m in known}
    for version in applied:
        logger.info("%s: applied schema version %d (%s)", where, version, names[version])
    return applied
