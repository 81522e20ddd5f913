"""The SQL-as-data convention both SQL adapters follow: named queries, numbered migrations, one runner.

The loaders and the runner live in ``adapters/_sql``; these tests drive them with small
files of their own, and check the adapters' own files against the convention (read
from the repository, so no PostgreSQL driver or server is needed here).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from actorflow.adapters._sql import RECORD_COLUMNS, Migration, apply_migrations, load_migrations, load_queries
from actorflow.adapters.sqlite._schema import SqliteSession, queries
from tests.adapters.sql_schema import TABLES

ADAPTERS = Path(__file__).resolve().parents[3] / "adapters"


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "queries.sql"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_query_is_its_sql_without_comments_and_with_the_record_columns(tmp_path):
    """The name line and the description are not SQL; comment lines are dropped; the record columns filled in."""
    path = _file(
        tmp_path,
        "-- A file's own notes.\n\n"
        "-- insert_it --\n"
        "-- Put a record in\n"
        "-- a longer note with a % sign\n"
        "INSERT INTO t ({record_columns})\n"
        "    -- another note\n"
        "VALUES ({record_placeholders}) {where};\n\n"
        "-- count_it --\n"
        "-- Count the rows\n"
        "SELECT count(*) FROM t\n",
    )
    found = load_queries(path, placeholder="%s")
    assert list(found) == ["insert_it", "count_it"]
    columns, placeholders = ", ".join(RECORD_COLUMNS), ", ".join(["%s"] * len(RECORD_COLUMNS))
    assert found["insert_it"] == f"INSERT INTO t ({columns})\nVALUES ({placeholders}) {{where}};"
    assert found["count_it"] == "SELECT count(*) FROM t"
    assert load_queries(path, placeholder="?")["insert_it"].count("?") == len(RECORD_COLUMNS)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("-- q --\nSELECT 1\n", r"queries\.sql:1: the query 'q' needs a one-line description"),
        ("-- q --\n-- One\nSELECT 1\n-- q --\n-- Two\nSELECT 2\n", r"queries\.sql:4: the query 'q' is defined twice"),
        ("SELECT 1\n-- q --\n-- One\nSELECT 1\n", r"queries\.sql:1: SQL before the first"),
        ("-- q --\n-- Nothing\n-- but comments\n", r"the query 'q' has no SQL"),
    ],
)
def test_a_file_that_breaks_the_format_is_refused_with_the_line(tmp_path, text, complaint):
    with pytest.raises(ValueError, match=complaint):
        load_queries(_file(tmp_path, text), placeholder="?")


def test_migrations_are_read_in_order_and_must_have_no_gaps(tmp_path):
    (tmp_path / "0002_second.sql").write_text("CREATE TABLE b (x INTEGER);\n")
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE a (x INTEGER);\n")
    (tmp_path / "README.md").write_text("not a migration")
    assert [(m.version, m.name) for m in load_migrations(tmp_path, dialect="test")] == [(1, "first"), (2, "second")]
    (tmp_path / "0004_fourth.sql").write_text("SELECT 1;\n")
    with pytest.raises(
        RuntimeError, match=r"test migrations must be numbered 1, 2, 3... without gaps; found \[1, 2, 4\]"
    ):
        load_migrations(tmp_path, dialect="test")


def test_a_newer_database_is_refused_before_anything_is_applied():
    """Version 2 is missing but 99 is there: nothing is applied (a newer release may have replaced 2)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    session = SqliteSession(conn)
    known = (Migration(1, "first", "CREATE TABLE a (x INTEGER);"), Migration(2, "second", "CREATE TABLE b (x);"))
    q = queries()
    session.execute(q["create_migrations_table"])
    session.execute(q["insert_migration"], (1, "first"))
    session.execute(q["insert_migration"], (99, "future"))
    with pytest.raises(LookupError, match=r"^the test database has schema version 99, .*\(2\): upgrade actorflow$"):
        apply_migrations(session, q, known, where="the test database", error=LookupError)
    assert session.fetch("SELECT name FROM sqlite_master WHERE name = 'b'") == []
    conn.close()


@pytest.mark.parametrize("adapter", ["sqlite", "postgres"])
def test_the_adapters_files_follow_the_convention(adapter):
    """Every query loads (each has its description), none keeps a comment, and all use the shared table names."""
    placeholder = "?" if adapter == "sqlite" else "%s"
    found = load_queries(ADAPTERS / adapter / "queries.sql", placeholder=placeholder)
    assert {"create_migrations_table", "select_migrations", "insert_migration"} <= set(found)
    for name, sql in found.items():
        assert not any(line.lstrip().startswith("--") for line in sql.splitlines()), name
        assert "{record_" not in sql, name
        named = {n for n in re.findall(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)", sql) if not n.isupper()}  # not SET
        catalogs = {
            "sqlite_master",
            "pg_stat_activity",
            "pg_locks",
            "pg_prepared_xacts",
            "pg_class",
            "pg_database",
            "pg_namespace",
            "json_each",
            "json_to_recordset",
            "unnest",
        }
        used = named - catalogs
        # the queries' common table expressions
        ctes = {
            "v",
            "nv",
            "ins",
            "upd",
            "cut",
            "dead",
            "node",
            "renewed",
            "lease",
            "snap",
            "foreign_xids",
            "locks",
            "here",
        }
        assert used <= TABLES | {"actorflow_migrations", "schema_migrations"} | ctes, name
    assert [m.version for m in load_migrations(ADAPTERS / adapter / "migrations", dialect=adapter)]
