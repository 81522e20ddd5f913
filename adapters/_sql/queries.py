"""The named queries of a SQL adapter, read from its ``queries.sql`` (SQL is data).

Both SQL adapters write their queries in one format (procrastinate's): a block per
query, opened by a ``-- name --`` line and a ``-- one-line description`` line, then the
SQL. Lines of ``--`` comments before the first block describe the file; full-line
comments inside a block are kept in the file for people and dropped from the query,
because psycopg reads every ``%`` of a query as a placeholder, comments included.

Placeholders stay in the adapter's dialect (``?`` for sqlite3, ``%s`` and ``%(name)s``
for psycopg). ``{record_columns}`` and ``{record_placeholders}`` are filled in here, in
`RECORD_COLUMNS` order; every other ``{...}`` is left for the adapter to fill when it
builds the statement (``{where}``, ``{direction}``, spliced fragments).
"""

from __future__ import annotations

import re
from importlib.resources.abc import Traversable

from .rows import RECORD_COLUMNS

__all__ = ["load_queries"]

_HEADER = re.compile(r"^-- (?P<name>\w+) --$")
_DESCRIPTION = re.compile(r"^-- \S.*$")
_COMMENT = re.compile(r"^\s*--")


def load_queries(file: Traversable, *, placeholder: str) -> dict[str, str]:
    """Every named query of ``file``, its comments dropped and the record columns filled in.

    ``placeholder`` is the dialect's positional parameter (``?`` or ``%s``). A file that
    breaks the format (a block without its description, an empty or repeated name, SQL
    before the first block) is a `ValueError` naming the line, so a malformed file fails
    when the adapter loads it, not when a query is first run.
    """
    where = getattr(file, "name", str(file))
    columns = ", ".join(RECORD_COLUMNS)
    placeholders = ", ".join([placeholder] * len(RECORD_COLUMNS))
    found: dict[str, str] = {}
    name: str | None = None
    body: list[str] = []

    def close_block() -> None:
        if name is None:
            return
        sql = "\n".join(body).strip()
        if not sql:
            msg = f"{where}: the query {name!r} has no SQL"
            raise ValueError(msg)
        found[name] = sql.replace("{record_columns}", columns).replace("{record_placeholders}", placeholders)

    lines = file.read_text(encoding="utf-8").splitlines()
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        header = _HEADER.match(line)
        if header is not None:
            close_block()
            name, body = header["name"], []
            if name in found:
                msg = f"{where}:{number}: the query {name!r} is defined twice"
                raise ValueError(msg)
            if number >= len(lines) or not _DESCRIPTION.match(lines[number]):
                msg = f"{where}:{number}: the query {name!r} needs a one-line description ('-- ...') under its name"
                raise ValueError(msg)
            number += 1  # the description is for people
        elif _COMMENT.match(line):
            continue  # for people: dropped from the query
        elif name is not None:
            body.append(line)
        elif line.strip():
            msg = f"{where}:{number}: SQL before the first '-- name --' line: {line.strip()[:60]!r}"
            raise ValueError(msg)
    close_block()
    return found
