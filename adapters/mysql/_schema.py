"""The SQL of the MySQL adapters (``queries.sql``, ``migrations/``) and migrating a database.

The files are read once, through `importlib.resources` (so they work from a wheel), by
the loaders the other SQL adapters use too (``adapters/_sql``), and the migrations are
applied by the shared runner. Two things differ from PostgreSQL:

- MySQL commits each DDL statement on its own, so a migration cannot be one transaction.
  The processes starting together are serialised by a named lock (``GET_LOCK``, held by
  the session across those implicit commits) instead of a transaction's advisory lock,
  and each script is written to be run again (``IF NOT EXISTS``): one cut off half way
  is finished by the next run, and recorded only then.
- A script is split into its statements here (the driver runs one at a time).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

from .._sql.migrations import Migration, apply_migrations, load_migrations
from .._sql.queries import load_queries
from ._connect import Settings, connect, parse_dsn
from ._errors import MysqlError, logger, wrap_exceptions

__all__ = ["QUERIES", "MysqlSession", "migrate", "migrate_on", "migrations", "statements"]

_PACKAGE = __name__.rpartition(".")[0]

QUERIES = load_queries(resources.files(_PACKAGE) / "queries.sql", placeholder="%s")
"""Every named query of ``queries.sql`` (PyMySQL placeholders), the record columns filled in."""

_LOCK_WAIT = 60  # seconds a migrator waits for another one to finish
_COMMENT = re.compile(r"^\s*--")
_END = re.compile(r";\s*$")


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """The schema versions this release knows, oldest first."""
    return load_migrations(resources.files(_PACKAGE) / "migrations", dialect="MySQL")


def statements(script: str) -> list[str]:
    """The statements of a migration script: full-line comments dropped, split at each line ending in ``;``."""
    found: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        if _COMMENT.match(line) or not line.strip():
            continue
        current.append(line)
        if _END.search(line):
            found.append(_END.sub("", "\n".join(current)).strip())
            current = []
    if "".join(current).strip():
        found.append("\n".join(current).strip())
    return found


class MysqlSession:
    """A PyMySQL connection as the migration runner's `Session`."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, query: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        with self._conn.cursor() as cur:
            cur.execute(query, tuple(params))

    def fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one query."""
        with self._conn.cursor() as cur:
            cur.execute(query, tuple(params))
            return list(cur.fetchall())

    def run_script(self, script: str) -> None:
        """Run a migration script, statement by statement (each DDL statement commits on its own)."""
        with self._conn.cursor() as cur:
            for statement in statements(script):
                cur.execute(statement)  # no parameters: a '%' in the script is not a placeholder


def _lock_name(settings: Settings) -> str:
    """The named lock of this database's migrations (``GET_LOCK`` names are server-wide)."""
    return f"actorflow:migrate:{settings.database}"[:64]


def migrate_on(conn: Any, settings: Settings) -> list[int]:
    """Apply the migrations the database lacks, on ``conn``, under the named lock; the versions applied now.

    A database newer than this release is refused (`MysqlError`) before anything is applied.
    """
    session = MysqlSession(conn)
    name = _lock_name(settings)
    taken = session.fetch(QUERIES["lock_migrations"], (name, _LOCK_WAIT))
    if not taken or taken[0][0] != 1:
        msg = f"another process kept the migration lock of MySQL database {settings.database!r} for {_LOCK_WAIT}s"
        raise MysqlError(msg)
    try:
        applied = apply_migrations(
            session, QUERIES, migrations(), where=f"the MySQL database {settings.database}", error=MysqlError
        )
    finally:
        session.fetch(QUERIES["unlock_migrations"], (name,))
    names = {m.version: m.name for m in migrations()}
    for version in applied:
        logger.info("database %s: applied schema version %d (%s)", settings.database, version, names[version])
    return applied


def migrate(dsn: str) -> list[int]:
    """Create the tables and apply every migration not applied yet; returns those applied.

    Safe to run from many processes at once: a named lock serialises them.
    """
    settings = parse_dsn(dsn)
    conn = connect(settings, dsn)
    try:
        with wrap_exceptions("migration"):
            return migrate_on(conn, settings)
    finally:
        conn.close()
