"""Bad DSNs and schemas are refused before anything connects; a DSN's password is never shown.

A DSN must name its database (libpq would otherwise pick one and migrate tables there),
and a schema may not be one PostgreSQL reserves. Errors, their causes, log records and
reprs show a DSN only redacted.
"""

from __future__ import annotations

import logging
import re
import socket
import traceback
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

import actorflow as af
from actorflow.adapters.postgres import (
    PostgresConfigError,
    PostgresError,
    PostgresEventStreamer,
    PostgresRecordStore,
    PostgresRoleScheduler,
    PostgresTimeoutStore,
    drop_schema,
    migrate,
)
from actorflow.adapters.postgres._errors import wrap_exceptions
from actorflow.errors import ActorflowError
from tests.waiting import eventually

pytestmark = pytest.mark.postgres

SECRET = "S3cr3t-Pw"  # noqa: S105 - the password that must never be shown

ADAPTERS: list[Callable[..., Any]] = [
    PostgresRecordStore,
    PostgresEventStreamer,
    PostgresTimeoutStore,
    PostgresRoleScheduler,
]


def _opener(cls: Callable[..., Any]) -> Callable[[str, str], None]:
    """Make the adapter ``cls`` on (dsn, schema) and connect it (it is closed again)."""

    def make_and_open(dsn: str, schema: str) -> None:
        adapter = cls(dsn, schema=schema)
        try:
            adapter.db.open()
        finally:
            adapter.close()

    return make_and_open


MAKERS: dict[str, Callable[[str, str], Any]] = {
    **{cls.__name__: _opener(cls) for cls in ADAPTERS},
    "migrate": migrate,
    "drop_schema": drop_schema,
}


def _with_password(dsn: str, port: int | None = None, dbname: str | None = None) -> str:
    """``dsn`` (a URL) with the password `SECRET`, and optionally another port or database."""
    parts = urlsplit(dsn)
    user = parts.username or "postgres"
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{SECRET}@{host}:{port or parts.port or 5432}"
    path = f"/{dbname}" if dbname else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


def _schemas(pg_dsn: str) -> set[str]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}


def _all_text(exc: BaseException) -> str:
    """Everything a user may see of ``exc``: its message, repr and the whole chained traceback."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


# -- bad DSNs --------------------------------------------------------------------------------------


@pytest.fixture
def libpq_env_to_test_server(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """libpq's environment points at the test database: a DSN lacking parts would reach it."""
    parts = urlsplit(pg_dsn)
    monkeypatch.setenv("PGHOST", parts.hostname or "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(parts.port or 5432))
    monkeypatch.setenv("PGUSER", parts.username or "postgres")
    monkeypatch.setenv("PGDATABASE", parts.path.lstrip("/") or "test")


@pytest.mark.parametrize("make", list(MAKERS), ids=list(MAKERS))
@pytest.mark.parametrize(
    "dsn",
    ["", "   ", "postgresql://", "postgresql://127.0.0.1:5432", "postgres://postgres@127.0.0.1", "host=127.0.0.1"],
    ids=["empty", "blank", "bare-scheme", "no-db-url", "no-db-user-url", "no-db-keyvalue"],
)
@pytest.mark.usefixtures("libpq_env_to_test_server")
def test_a_dsn_naming_no_database_is_refused_before_connecting(
    dsn: str, make: str, pg_dsn: str, pg_schema: str
) -> None:
    """libpq would fill in the database (here: the test one) from the environment: nothing is created."""
    with pytest.raises(PostgresConfigError, match=r"DSN is required|must name the database") as caught:
        MAKERS[make](dsn, pg_schema)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, PostgresError)
    assert isinstance(caught.value, ActorflowError)
    assert pg_schema not in _schemas(pg_dsn)


def test_the_dsn_naming_its_database_in_a_key_value_string_is_accepted(pg_dsn: str, pg_schema: str) -> None:
    parts = urlsplit(pg_dsn)
    dsn = f"host={parts.hostname} port={parts.port or 5432} user={parts.username} dbname={parts.path.lstrip('/')}"
    store = PostgresRecordStore(dsn, schema=pg_schema)
    try:
        store.db.open()
    finally:
        store.close()
    assert pg_schema in _schemas(pg_dsn)


def test_an_invalid_dsn_is_a_config_error_without_the_password() -> None:
    with pytest.raises(PostgresConfigError, match="invalid PostgreSQL DSN") as caught:
        PostgresRecordStore(f"host=127.0.0.1 password={SECRET} junk")
    assert SECRET not in _all_text(caught.value)


# -- reserved schemas ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", list(MAKERS), ids=list(MAKERS))
@pytest.mark.parametrize(
    "schema",
    ["information_schema", "pg_catalog", "pg_toast", "pg_temp", "pg_actorflow", "PG_Catalog", "INFORMATION_Schema"],
)
def test_a_schema_reserved_by_postgresql_is_refused_before_connecting(pg_dsn: str, make: str, schema: str) -> None:
    before = _tables_in_reserved_schemas(pg_dsn)
    with pytest.raises(PostgresConfigError, match="reserved by PostgreSQL") as caught:
        MAKERS[make](pg_dsn, schema)
    assert isinstance(caught.value, ValueError)
    assert _tables_in_reserved_schemas(pg_dsn) == before == set()


def _tables_in_reserved_schemas(pg_dsn: str) -> set[tuple[str, str]]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname LIKE 'workflow%%' AND (n.nspname = 'information_schema' OR n.nspname LIKE 'pg%%')"
        ).fetchall()
    return {(row[0], row[1]) for row in rows}


@pytest.mark.parametrize("schema", ["x; drop table y", "", "1abc", "a-b", "x" * 64])
def test_a_schema_that_is_no_plain_identifier_is_a_config_error(schema: str) -> None:
    with pytest.raises(PostgresConfigError, match="plain identifier"):
        PostgresRecordStore("postgresql://postgres@127.0.0.1:1/test", schema=schema)


@pytest.mark.parametrize("schema", ["public", "pgx", "app_pg_data", "_pg", "information_schema_2"])
def test_schemas_near_the_reserved_ones_are_accepted(schema: str) -> None:
    store = PostgresRecordStore("postgresql://postgres@127.0.0.1:1/test", schema=schema)  # nothing connects
    assert store.db.schema == schema


# -- passwords -------------------------------------------------------------------------------------


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record, of every logger (psycopg's and its pool's too), at every level."""
    with caplog.at_level(logging.DEBUG):
        yield caplog


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    lines = []
    for record in caplog.records:
        lines.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            lines.extend(traceback.format_exception(record.exc_info[1]))
    return "\n".join(lines)


def _free_port() -> int:
    """A port nothing listens on (just freed by the OS)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _failing_dsns(pg_dsn: str) -> dict[str, str]:
    return {
        "closed port": _with_password(pg_dsn, port=1),
        "wrong port": _with_password(pg_dsn, port=_free_port()),
        "no such database": _with_password(pg_dsn, dbname="actorflow_no_such_db"),
        "key/value": f"host=127.0.0.1 port=1 user=postgres password='{SECRET} x' dbname=test",
    }


@pytest.mark.parametrize("case", ["closed port", "wrong port", "no such database", "key/value"])
def test_a_failed_connection_never_shows_the_password(
    pg_dsn: str, pg_schema: str, case: str, all_logs: pytest.LogCaptureFixture
) -> None:
    dsn = _failing_dsns(pg_dsn)[case]
    failures: list[BaseException] = []
    for cls in ADAPTERS:
        adapter = cls(dsn, schema=pg_schema)
        try:
            with pytest.raises(PostgresError, match="cannot connect to PostgreSQL") as caught:
                adapter.db.open()
            failures.append(caught.value)
            with pytest.raises(PostgresError, match="cannot connect to PostgreSQL") as caught:
                adapter.db.fetchone("a lookup", "SELECT 1")
            failures.append(caught.value)
        finally:
            adapter.close()
    for fn in (migrate, drop_schema):
        with pytest.raises(PostgresError, match="cannot connect to PostgreSQL") as caught:
            fn(dsn, pg_schema)
        failures.append(caught.value)
    for exc in failures:
        text = _all_text(exc)
        assert SECRET not in text
        assert "***" in str(exc)  # the DSN is named, redacted
    assert SECRET not in _logged(all_logs)


def test_driver_errors_are_redacted_with_their_cause() -> None:
    """A driver message quoting a conninfo (as some do) shows no password, nor does the kept cause."""
    with pytest.raises(PostgresError) as caught, wrap_exceptions("a query"):
        raise psycopg.OperationalError(
            f"failed for 'host=db password={SECRET} dbname=x' and postgresql://u:{SECRET}@db/x"
        )
    assert SECRET not in _all_text(caught.value)
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)


def test_working_adapters_log_and_show_no_password(
    pg_dsn: str, pg_schema: str, all_logs: pytest.LogCaptureFixture
) -> None:
    """The test server trusts any password: adapters work, and a lost LISTEN connection is logged without it."""
    dsn = _with_password(pg_dsn)
    adapters = [cls(dsn, schema=pg_schema) for cls in ADAPTERS]
    try:
        for adapter in adapters:
            shown = repr(adapter)
            assert SECRET not in shown
            assert ":***@" in shown
            assert pg_schema in shown
            assert SECRET not in repr(adapter.db)
        store = adapters[0]
        store.db.open()
        listener = store.db.listener()
        eventually(listener.connected.is_set, timeout=10, what="the LISTEN connection")
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                (f"actorflow-{pg_schema}"[:63],),
            )
        eventually(
            lambda: any(re.search(r"LISTEN connection\b.*\blost", r.getMessage()) for r in all_logs.records),
            timeout=10,
            what="the lost LISTEN connection logged",
        )
    finally:
        for adapter in adapters:
            adapter.close()
    assert SECRET not in _logged(all_logs)


@pytest.mark.parametrize("bad", [0, -1, timedelta(seconds=-5)])
def test_postgres_durations_out_of_range_are_refused(pg_dsn, pg_schema, bad):
    """The streamer's retention and the role scheduler's ttl: BuildError (a ValueError), nothing created."""
    from actorflow.adapters.postgres import PostgresEventStreamer, PostgresRoleScheduler

    with pytest.raises(af.BuildError, match="retention"):
        PostgresEventStreamer(pg_dsn, schema=pg_schema, retention=bad)
    with pytest.raises(af.BuildError, match="ttl"):
        PostgresRoleScheduler(pg_dsn, schema=pg_schema, ttl=bad)
