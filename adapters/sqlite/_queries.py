"""The SQL of the SQLite adapters, loaded from the package's ``.sql`` files.

SQL is data (STYLE item 8): ``queries.sql`` holds one named block per query, with a
one-line description; ``migrations/NNNN_name.sql`` hold the schema, one file per version.
Both are read once, through `importlib.resources`, so they work from a wheel too.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sqlite3
from importlib import resources

from .._sql import RECORD_COLUMNS

__all__ = ["Migration", "migrations", "queries", "split_statements"]

_PACKAGE = __name__.rpartition(".")[0]
_BLOCK = re.compile(
    r"^-- (?P<name>\w+) --\n-- (?P<description>[^\n]+)\n(?P<sql>.*?)(?=^-- \w+ --$|\Z)",
    re.MULTILINE | re.DOTALL,
)
_MIGRATION_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>\w+)\.sql$")
_COMMENT_LINE = re.compile(r"^\s*(--.*)?$")


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: its number, its name and its statements, in order."""

    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(script: str) -> tuple[str, ...]:
    """The statements of ``script``, split where SQLite itself says a statement is complete.

    `sqlite3.complete_statement` understands strings, comments and trigger bodies, so a
    ``;`` inside them does not split a statement.
    """
    statements: list[str] = []
    lines: list[str] = []
    for line in script.splitlines():
        lines.append(line)
        text = "\n".join(lines)
        if sqlite3.complete_statement(text):
            statements.append(text.strip())
            lines = []
    if any(not _COMMENT_LINE.match(line) for line in lines):
        msg = f"the SQL script ends with an incomplete statement: {' '.join(lines)[:80]!r}"
        raise ValueError(msg)
    return tuple(statements)


@functools.cache
def queries() -> dict[str, str]:
    """Every named query of ``queries.sql``, with the record columns filled in."""
    text = (resources.files(_PACKAGE) / "queries.sql").read_text(encoding="utf-8")
    columns = ", ".join(RECORD_COLUMNS)
    placeholders = ", ".join("?" * len(RECORD_COLUMNS))
    found: dict[str, str] = {}
    for match in _BLOCK.finditer(text):
        sql = match["sql"].strip().replace("{record_columns}", columns).replace("{record_placeholders}", placeholders)
        found[match["name"]] = sql
    return found


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """The schema versions this release knows, oldest first."""
    folder = resources.files(_PACKAGE) / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match is not None:
            script = entry.read_text(encoding="utf-8")
            found.append(Migration(int(match["version"]), match["name"], split_statements(script)))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        msg = f"the SQLite migrations must be numbered 1, 2, 3... without gaps; found {versions}"
        raise RuntimeError(msg)
    return tuple(found)
