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
import select
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import pq, sql
from psycopg.adapt import Buffer, Transformer
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.datetime import TimestamptzLoader

from actorflow.errors import ActorflowError

from .._lifecycle import Shared
from .listener import Listener

__all__ = ["Database", "PostgresAdapter", "PostgresError", "drop_schema", "migrate"]

T = TypeVar("T")

logger = logging.getLogger("actorflow.postgres")

_SCHEMA = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_CONNECT_TIMEOUT = 10
# A checkout that waits longer than this makes the pool check the server is there at all
# (a direct connection, ``_PROBE_TIMEOUT`` at most): an outage fails the caller in about a
# second with the reason, instead of after the pool timeout (twice, if resent).
_BUSY_WAIT = 1.0
_PROBE_TIMEOUT = 2


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


class _LenientTimestamptzLoader(TimestamptzLoader):
    """Reads a time Python cannot hold (``infinity``, past year 9999) as its text, not an error.

    The row holding it is then unreadable on its own (see `actorflow.adapters._sql`), instead
    of the whole result failing to load.
    """

    def load(self, data: Buffer) -> Any:
        try:
            return super().load(data)
        except psycopg.DataError:
            return bytes(data).decode("utf-8", "replace")


def rows_of(cur: psycopg.Cursor[Any]) -> list[Any]:
    """Every row of ``cur``'s result; a value the driver cannot load comes back as its text.

    A time at ``-infinity`` (or past year 9999) then makes only its row unreadable,
    never a whole list; nothing is sent again (the result received is loaded again).
    """
    try:
        return cur.fetchall()
    except psycopg.DataError:
        result = cur.pgresult
        if result is None:
            raise
        lenient = cur.connection.cursor()
        lenient.adapters.register_loader("timestamptz", _LenientTimestamptzLoader)
        loader = Transformer(lenient)
        loader.set_pgresult(result)
        return loader.load_rows(0, result.ntuples, tuple)


def _cut(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server already closed this idle pooled connection (a restart, ``pg_terminate_backend``).

    A local check, no round trip: an idle connection's socket has nothing to read unless
    the server said goodbye (its last message, then end of file). Nothing has been sent
    on it yet, so taking another connection is safe for any work.
    """
    pgconn = conn.pgconn
    try:
        for _ in range(3):  # the goodbye message, then the end of the stream
            if pgconn.status != pq.ConnStatus.OK:
                return True
            if not select.select([pgconn.socket], [], [], 0)[0]:
                return False
            pgconn.consume_input()
    except (psycopg.OperationalError, OSError, ValueError):  # ValueError: a socket past select()'s limit
        return pgconn.status != pq.ConnStatus.OK
    return pgconn.status != pq.ConnStatus.OK


class _Cut(Exception):
    """A pooled connection was found closed by the server before anything was sent on it."""


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


def _connect_once(conninfo: str, dsn: str, **overrides: Any) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(conninfo, autocommit=True, **overrides)
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
        known = _migrations()
        newest = max(version for version, _, _ in known)
        if done and max(done) > newest:
            msg = (
                f"the PostgreSQL schema {schema} has schema version {max(done)}, newer than this "
                f"actorflow knows ({newest}): upgrade actorflow"
            )
            raise PostgresError(msg)
        for version, name, text in known:
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
        self._on_close: list[Callable[[], None]] = []
        self._on_closed: list[Callable[[], None]] = []

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

    def run(self, what: str, fn: Callable[[psycopg.Connection[Any]], T], *, resend: bool = True) -> T:
        """``fn(conn)`` on a pooled connection (autocommit), errors wrapped as `PostgresError`.

        A pooled connection the server cut while it sat idle (a restart,
        ``pg_terminate_backend``) is noticed before anything is sent on it (`_cut`, no
        round trip): it is dropped, the pool's other idle connections are checked, and
        ``fn`` runs on another. That is safe for any work.

        A connection lost *while* ``fn`` runs leaves its outcome unknown: the last
        statement (its commit) may or may not have been applied. With ``resend`` (the
        default) ``fn`` is run once more on a fresh connection, so repeating it must be
        harmless: reads are; writes are idempotent, conditioned on versions (see
        `PostgresRecordStore.store_many`), or duplicates the engine absorbs (an event
        sent twice, a timeout created twice). Work that is not (counting an error: one
        failure would count twice) passes ``resend=False`` and the loss is raised.
        """
        with wrap_exceptions(what):
            pool = self.pool()
            failures = 0
            for _ in range(self._max + 2):  # each cut connection found is dropped from the pool
                try:
                    with self._checkout(pool) as conn:
                        if _cut(conn):
                            raise _Cut  # noqa: TRY301 - the pool drops the broken connection on the way out
                        return fn(conn)
                except _Cut:
                    self._check(pool)
                except psycopg_pool.PoolTimeout:
                    raise  # nothing was sent: no resend (an OperationalError subclass, caught next)
                except psycopg.OperationalError:
                    self._check(pool)
                    failures += 1
                    if not resend or failures > 1:
                        raise
            msg = f"{what}: every pooled connection had been closed by the server"
            raise PostgresError(msg)

    @contextlib.contextmanager
    def _checkout(self, pool: psycopg_pool.ConnectionPool[Any]) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection, as ``pool.connection()``, failing fast when the server is away.

        The pool reconnects in the background with a growing back-off; a caller waiting
        on it during an outage would only learn of it at the pool timeout.
        """
        try:
            conn = pool.getconn(timeout=_BUSY_WAIT)
        except psycopg_pool.PoolTimeout:
            # Is the server there? PostgresError now, with the driver's reason, if not.
            direct = _connect_once(self.conninfo, self.dsn, connect_timeout=_PROBE_TIMEOUT)
            if pool.get_stats().get("pool_size", 0) == 0:
                # Back after an outage, the pool still sleeps between reconnects (its
                # back-off grows with the outage): work on this connection meanwhile.
                with direct:  # closed at the end (it is not the pool's)
                    yield direct
                return
            direct.close()
            conn = pool.getconn()  # the server is there and the pool busy: wait for it
        try:
            with conn:  # commit or roll back, as pool.connection() does (a pooled one stays open)
                yield conn
        finally:
            pool.putconn(conn)

    @staticmethod
    def _check(pool: psycopg_pool.ConnectionPool[Any]) -> None:
        """Drop the pool's idle connections the server closed (after one was found closed)."""
        with contextlib.suppress(psycopg.Error, psycopg_pool.PoolClosed):
            pool.check()

    def fetchone(self, what: str, query: str, params: Any = (), *, resend: bool = True) -> Any:
        """The first row of ``query`` (``None`` when there is none)."""

        def fetch(conn: psycopg.Connection[Any]) -> Any:
            rows = rows_of(conn.execute(query, params))
            return rows[0] if rows else None

        return self.run(what, fetch, resend=resend)

    def fetchall(self, what: str, query: str, params: Any = ()) -> list[Any]:
        """Every row of ``query`` (a value the driver cannot load comes back as text: see `rows_of`)."""
        return self.run(what, lambda conn: rows_of(conn.execute(query, params)))

    def execute(self, what: str, query: str, params: Any = (), *, resend: bool = True) -> int:
        """Run ``query``; returns the rows it changed."""
        return self.run(what, lambda conn: conn.execute(query, params).rowcount, resend=resend)

    def on_close(self, fn: Callable[[], None], *, then: Callable[[], None] | None = None) -> None:
        """Call ``fn`` first on close, and ``then`` once the pool is closed.

        ``fn`` tells a thread using the pool to stop; ``then`` joins it: closing the pool
        fails a thread still waiting for a connection, so the join does not wait out an
        outage.
        """
        with self._lock:
            self._on_close.append(fn)
            if then is not None:
                self._on_closed.append(then)

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
            closers = list(self._on_close)
        for closer in closers:
            closer()
        with self._lock:
            pool, self._pool = self._pool, None
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        if pool is not None:
            pool.close()
        with self._lock:
            after = list(self._on_closed)
        for fn in after:
            fn()


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
