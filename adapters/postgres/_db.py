"""Connections, queries, migrations and error wrapping for the PostgreSQL adapters.

A `Database` is one (DSN, schema): a lazily opened psycopg connection pool whose
connections have ``search_path`` set to the schema, the named queries of
``queries.sql``, the versioned migrations of ``migrations/``, and the LISTEN thread that
wakes waiting receivers (started on first wait, stopped by `close`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from actorflow.errors import ActorflowError

from .._lifecycle import Shared
from .listener import Listener

__all__ = ["Database", "PostgresAdapter", "PostgresError", "drop_schema", "migrate"]

T = TypeVar("T")

logger = logging.getLogger("actorflow.postgres")

_SCHEMA = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_CONNECT_TIMEOUT = 10


class PostgresError(ActorflowError):
    """A PostgreSQL operation failed (the driver's error is the cause)."""


@contextlib.contextmanager
def wrap_exceptions(what: str) -> Iterator[None]:
    """Turn driver and pool errors into `PostgresError`, keeping them as the cause."""
    try:
        yield
    except ActorflowError:
        raise
    except psycopg_pool.PoolTimeout as exc:
        msg = f"{what}: no database connection within the pool timeout ({exc})"
        raise PostgresError(msg) from exc
    except psycopg.Error as exc:
        msg = f"{what}: {type(exc).__name__}: {exc}".strip()
        raise PostgresError(msg) from exc


def _load_queries() -> dict[str, str]:
    text = resources.files(__package__).joinpath("queries.sql").read_text(encoding="utf-8")
    queries: dict[str, str] = {}
    name = None
    lines: list[str] = []
    for line in text.splitlines():
        match = re.match(r"^-- name: (\w+)", line)
        if match:
            if name:
                queries[name] = "\n".join(lines).strip()
            name, lines = match.group(1), []
        elif name and not line.startswith("--"):
            lines.append(line)
    if name:
        queries[name] = "\n".join(lines).strip()
    return queries


QUERIES = _load_queries()


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = re.match(r"^(\d+)_(\w+)\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found)


def check_schema(schema: str) -> str:
    """``schema`` if it is a plain identifier (it is used in SQL), else `ValueError`."""
    if not _SCHEMA.match(schema):
        msg = f"schema must be a plain identifier (letters, digits, _), got {schema!r}"
        raise ValueError(msg)
    return schema


def _conninfo(dsn: str, schema: str) -> str:
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        msg = f"invalid PostgreSQL DSN {dsn!r}: {exc}"
        raise PostgresError(msg) from exc
    params.setdefault("connect_timeout", _CONNECT_TIMEOUT)
    # Named per schema: an operator (or a test) can find, and cut, exactly these sessions.
    params.setdefault("application_name", f"actorflow-{schema}"[:63])
    options = str(params.get("options") or "")
    params["options"] = f"{options} -c search_path={schema} -c timezone=UTC".strip()
    return make_conninfo("", **params)


def _connect_once(conninfo: str, dsn: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(conninfo, autocommit=True)
    except psycopg.Error as exc:
        host = conninfo_to_dict(conninfo).get("host", "localhost")
        msg = f"cannot connect to PostgreSQL at {host!r} ({dsn!r}): {exc}".strip()
        raise PostgresError(msg) from exc


def migrate(dsn: str, schema: str = "public") -> list[int]:
    """Create the schema and apply every migration not applied yet; returns those applied.

    Safe to run from many processes at once: an advisory lock serialises them.
    """
    check_schema(schema)
    conninfo = _conninfo(dsn, schema)
    with _connect_once(conninfo, dsn) as conn, wrap_exceptions("migration"):
        return _migrate(conn, schema)


def drop_schema(dsn: str, schema: str) -> None:
    """Drop ``schema`` and everything in it, cutting this library's sessions on it first."""
    check_schema(schema)
    conninfo = _conninfo(dsn, schema)
    with _connect_once(conninfo, dsn) as conn, wrap_exceptions("dropping a schema"):
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (f"actorflow-{schema}"[:63],),
        )
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _migrate(conn: psycopg.Connection[Any], schema: str) -> list[int]:
    lock = int.from_bytes(hashlib.sha256(f"actorflow:{schema}".encode()).digest()[:8], "big", signed=True)
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.actorflow_migrations "
                "(version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(schema))
        )
        done = {row[0] for row in conn.execute("SELECT version FROM actorflow_migrations")}
        for version, name, text in _migrations():
            if version in done:
                continue
            conn.execute(text.encode())
            conn.execute("INSERT INTO actorflow_migrations (version, name) VALUES (%s, %s)", (version, name))
            applied.append(version)
    return applied


class Database(Shared):
    """One schema of one PostgreSQL server, shared by the adapters made for it."""

    def __init__(self, dsn: str, schema: str, *, max_connections: int = 10) -> None:
        super().__init__()
        self.dsn = dsn
        self.schema = check_schema(schema)
        self.conninfo = _conninfo(dsn, schema)
        self.channel = f"actorflow_{schema}"[:63]
        self._max = max_connections
        self._lock = threading.Lock()
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._listener: Listener | None = None

    @property
    def identity(self) -> tuple[str, str, str]:
        """What makes two adapters share a database: server, database and schema."""
        params = conninfo_to_dict(self.conninfo)
        server = f"{params.get('host', '')}:{params.get('port', '')}"
        return server, str(params.get("dbname", "")), self.schema

    def pool(self) -> psycopg_pool.ConnectionPool[Any]:
        """The connection pool, opened (and the schema migrated) on first use."""
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._pool is None:
                # Connect once directly: a wrong DSN or a server that is away fails here,
                # with the driver's own reason, instead of as a pool timeout.
                with _connect_once(self.conninfo, self.dsn) as conn, wrap_exceptions("migration"):
                    _migrate(conn, self.schema)
                # No per-checkout health check (a round trip each time): a broken connection
                # fails its query, the actor using it restarts, and the pool drops it.
                pool = psycopg_pool.ConnectionPool(
                    self.conninfo,
                    kwargs={"autocommit": True},
                    min_size=1,
                    max_size=self._max,
                    open=False,
                    name=f"actorflow-{self.schema}",
                    num_workers=1,
                    timeout=_CONNECT_TIMEOUT,
                )
                with wrap_exceptions("opening the connection pool"):
                    pool.open(wait=True, timeout=_CONNECT_TIMEOUT)
                self._pool = pool
            return self._pool

    def open(self) -> None:
        """Connect (and migrate) now: a wrong DSN or an unreachable server fails here."""
        self.pool()

    def run(self, what: str, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``fn(conn)`` on a pooled connection (autocommit), errors wrapped as `PostgresError`.

        A connection the server cut (a restart, ``pg_terminate_backend``) fails its first
        query: the pool's other idle connections are checked at once, and ``fn`` is run
        once more on a fresh one. ``fn`` must be safe to repeat: reads are, and writes
        are conditioned on versions (see `PostgresRecordStore.store_many`).
        """
        with wrap_exceptions(what):
            pool = self.pool()
            for attempt in (1, 2):
                try:
                    with pool.connection() as conn:
                        return fn(conn)
                except psycopg.OperationalError:
                    with contextlib.suppress(psycopg.Error, psycopg_pool.PoolClosed):
                        pool.check()
                    if attempt == 2:  # noqa: PLR2004 - the retry failed too
                        raise
            raise AssertionError  # pragma: no cover - the loop returns or raises

    def fetchone(self, what: str, query: str, params: Any = ()) -> Any:
        """The first row of ``query`` (``None`` when there is none)."""
        return self.run(what, lambda conn: conn.execute(query, params).fetchone())

    def fetchall(self, what: str, query: str, params: Any = ()) -> list[Any]:
        """Every row of ``query``."""
        return self.run(what, lambda conn: conn.execute(query, params).fetchall())

    def execute(self, what: str, query: str, params: Any = ()) -> int:
        """Run ``query``; returns the rows it changed."""
        return self.run(what, lambda conn: conn.execute(query, params).rowcount)

    def listener(self) -> Listener:
        """The LISTEN thread of this database's channel (started on first use)."""
        with self._lock:
            if self._listener is None:
                self._listener = Listener(self.conninfo, self.channel)
            return self._listener

    def notify(self, conn: psycopg.Connection[Any], payloads: Callable[[], list[str]] | list[str]) -> None:
        """Queue notifications on ``conn`` (delivered when its transaction commits)."""
        items = payloads() if callable(payloads) else payloads
        for payload in dict.fromkeys(items):
            conn.execute("SELECT pg_notify(%s, %s)", (self.channel, payload))

    def close(self) -> None:
        """Close the pool and stop the listener; the adapters can be opened again later."""
        with self._lock:
            pool, self._pool = self._pool, None
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        if pool is not None:
            pool.close()


class PostgresAdapter:
    """What every PostgreSQL adapter shares: its `Database`, `close`, `attach` and `detach`."""

    def __init__(self, dsn: str, *, schema: str = "public", max_connections: int = 10) -> None:
        self.db = Database(dsn, check_schema(schema), max_connections=max_connections)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} schema={self.db.schema!r}>"

    def attach(self) -> None:
        """A supervisor starts using this adapter."""
        self.db.attach()

    def detach(self) -> None:
        """A supervisor stopped; the last one to stop releases connections and threads."""
        self.db.detach()

    def close(self) -> None:
        """Close the pool and the listener (reopened on next use)."""
        self.db.close()
