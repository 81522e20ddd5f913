"""Versioned schema migrations for the SQL adapters: one file format, one runner, one bookkeeping table.

Each adapter keeps its schema as ``migrations/NNNN_name.sql``, one script per version,
numbered 1, 2, 3... without gaps. The versions applied to a database are rows of its
``actorflow_migrations (version, name, applied_at)`` table, in both dialects.

The runner drives either driver through a `Session` and takes every statement it runs
from the adapter's named queries (``queries.sql``), so no SQL is written here:

- ``create_migrations_table``: create the bookkeeping table if it is missing;
- ``select_migrations``: the versions applied, one per row;
- ``insert_migration``: record a version (parameters: version, name; ``applied_at``
  defaults to the time of the write);
- ``migrations_table_exists`` (for `needs_migrating`): one row whose first value is
  true when the table exists;
- ``legacy_migrations_table_exists``, ``adopt_legacy_migrations`` and
  ``drop_legacy_migrations``, only in a dialect whose older releases kept their
  bookkeeping elsewhere (SQLite's ``schema_migrations``): when the first finds the old
  table, its rows are copied into ``actorflow_migrations`` and it is dropped, before the
  runner decides what is pending.

The caller holds its dialect's exclusive lock for the whole run (PostgreSQL: an advisory
transaction lock; SQLite: ``BEGIN IMMEDIATE``) and commits, so processes starting
together apply each version once, and a failing version leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from importlib.resources.abc import Traversable
from typing import Any, Protocol

__all__ = ["Migration", "Session", "apply_migrations", "load_migrations", "needs_migrating"]

_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>\w+)\.sql$")


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: its number, its name, and its script (run by the dialect's `Session`)."""

    version: int
    name: str
    script: str


class Session(Protocol):
    """What the runner needs of a connection, whatever the driver."""

    def execute(self, query: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""

    def fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of one query."""

    def run_script(self, script: str) -> None:
        """Run a migration script: its statements, in order, in the caller's transaction."""


def load_migrations(folder: Traversable, *, dialect: str) -> tuple[Migration, ...]:
    """The migrations in ``folder`` (``NNNN_name.sql``), oldest first.

    They must be numbered 1, 2, 3... without gaps: a missing or doubled number is a
    `RuntimeError` (a packaging fault), never a database migrated past a hole.
    """
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match is not None:
            found.append(Migration(int(match["version"]), match["name"], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if not found or versions != list(range(1, len(found) + 1)):
        msg = f"the {dialect} migrations must be numbered 1, 2, 3... without gaps; found {versions}"
        raise RuntimeError(msg)
    return tuple(found)


def _refuse_newer(
    applied: set[int], known: Sequence[Migration], *, where: str, error: Callable[[str], Exception]
) -> None:
    """Raise ``error`` when the database was migrated by a newer release than this one."""
    newest = known[-1].version
    if applied and max(applied) > newest:
        msg = f"{where} has schema version {max(applied)}, newer than this actorflow knows ({newest}): "
        msg += "upgrade actorflow"
        raise error(msg)


def _applied(session: Session, queries: Mapping[str, str]) -> set[int]:
    return {int(row[0]) for row in session.fetch(queries["select_migrations"])}


def needs_migrating(
    session: Session,
    queries: Mapping[str, str],
    known: Sequence[Migration],
    *,
    where: str,
    error: Callable[[str], Exception],
) -> bool:
    """Whether `apply_migrations` has anything to do: a cheap look without the lock.

    Safe without the lock because versions are only ever added: a database found up to
    date stays so. A database newer than the code is refused here already.
    """
    if not session.fetch(queries["migrations_table_exists"])[0][0]:
        return True  # new, or kept by an older release's bookkeeping
    applied = _applied(session, queries)
    _refuse_newer(applied, known, where=where, error=error)
    return any(m.version not in applied for m in known)


def apply_migrations(
    session: Session,
    queries: Mapping[str, str],
    known: Sequence[Migration],
    *,
    where: str,
    error: Callable[[str], Exception],
) -> list[int]:
    """Apply the migrations the database lacks and record each; the versions applied now.

    Call it holding the dialect's exclusive lock, inside the transaction that commits
    the result. ``where`` names the database in messages; ``error`` makes the adapter's
    error for a database whose schema is newer than ``known`` (nothing is applied then,
    not even a missing older version: a newer release may have replaced it).
    """
    session.execute(queries["create_migrations_table"])
    if "adopt_legacy_migrations" in queries and session.fetch(queries["legacy_migrations_table_exists"])[0][0]:
        session.execute(queries["adopt_legacy_migrations"])
        session.execute(queries["drop_legacy_migrations"])
    applied = _applied(session, queries)
    _refuse_newer(applied, known, where=where, error=error)
    done: list[int] = []
    for migration in known:
        if migration.version in applied:
            continue
        session.run_script(migration.script)
        session.execute(queries["insert_migration"], (migration.version, migration.name))
        done.append(migration.version)
    return done
