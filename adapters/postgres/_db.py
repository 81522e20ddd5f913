"""A PostgreSQL database as the adapters use it: the pool, running work on it, notifications, closing.

A `Database` is one (DSN, schema): a lazily opened psycopg connection pool whose
connections have ``search_path`` set to the schema (migrated when the pool opens, see
``_schema.py``), `Database.run` through which every operation goes (a connection the
server cut is replaced; work lost in flight is sent again only when that is safe), and
the LISTEN thread that wakes waiting receivers (started on first wait, stopped by
`close`). `PostgresAdapter` is what every adapter built on one shares.

psycopg_pool logs every failed reconnect attempt of an outage (hundreds of lines a
minute, enough to stall a node whose stderr is piped): a `RepeatFilter`, installed once
on the third-party ``psycopg.pool`` logger when a pool is first made, lets one record of
a kind through a minute and counts the rest (`actorflow._lograte`).

The other concerns live beside it: ``_errors.py`` (`PostgresError`), ``_connect.py``
(the connection string), ``_rows.py`` (lenient row loading), ``_schema.py`` (queries,
migrations, dropping a schema).
"""

from __future__ import annotations

import contextlib
import select
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from actorflow._lograte import RepeatFilter, install_filter
from actorflow._redact import redact
from actorflow.protocols import Fence

from .._lifecycle import Shared
from .._sql import fleet
from .._sql.server import ServerAdapter
from ._connect import CONNECT_TIMEOUT, STUCK_AFTER, check_schema, connect_once, conninfo
from ._errors import PostgresError, logger, wrap_exceptions
from ._rows import rows_of
from ._schema import QUERIES, drop_schema, migrate, migrate_on
from .listener import Listener

# What the adapters import from here (QUERIES, logger, rows_of...) stays importable here.
__all__ = [
    "QUERIES",
    "RESENDS",
    "Database",
    "LeaseKeeper",
    "PostgresAdapter",
    "PostgresError",
    "check_fence",
    "check_schema",
    "drop_schema",
    "logger",
    "migrate",
    "rows_of",
    "wrap_exceptions",
]

T = TypeVar("T")

# A checkout that waits longer than this makes the pool check the server is there at all
# (a direct connection, ``_PROBE_TIMEOUT`` at most): an outage fails the caller in about a
# second with the reason, instead of after the pool timeout (twice, if resent).
_BUSY_WAIT = 1.0
_PROBE_TIMEOUT = 2
# Resends of work whose connection was lost while it ran. More than one: a server cutting
# every session (a restart, pg_terminate_backend of a node's sessions) kills them one
# after the other, so the fresh connection of a resend may be the next to go.
RESENDS = 3


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


class Database(Shared):
    """One schema of one PostgreSQL server, shared by the adapters made for it."""

    def __init__(self, dsn: str, schema: str, *, max_connections: int = 10) -> None:
        super().__init__()
        self.dsn = dsn
        self.schema = check_schema(schema)
        self.conninfo = conninfo(dsn, schema)
        self.channel = f"actorflow_{schema}"[:63]
        self._max = max_connections
        self._lock = threading.Lock()
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._listener: Listener | None = None
        self._on_close: list[Callable[[], None]] = []
        self._on_closed: list[Callable[[], None]] = []
        self.queries: Mapping[str, str] = QUERIES

    def __repr__(self) -> str:
        return f"<Database {redact(self.dsn)!r} schema={self.schema!r}>"

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
                with connect_once(self.conninfo, self.dsn) as conn, wrap_exceptions("migration"):
                    migrate_on(conn, self.schema)
                install_filter("psycopg.pool", RepeatFilter)  # its reconnect warnings: one a minute
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
                    timeout=CONNECT_TIMEOUT,
                )
                with wrap_exceptions("opening the connection pool"):
                    pool.open(wait=True, timeout=CONNECT_TIMEOUT)
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
        default) ``fn`` is run again on a fresh connection (up to `RESENDS` times), so repeating it must be
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
                except psycopg.errors.LockNotAvailable:
                    # Nothing was applied (the statement failed, its transaction rolled back).
                    # A frozen node's session may hold the lock for ever: end any stuck one,
                    # and try again only if one was ended.
                    if not self._end_stuck_sessions(pool) or not resend:
                        raise
                    failures += 1
                    if failures > RESENDS:
                        raise
                except psycopg_pool.PoolTimeout:
                    raise  # nothing was sent: no resend (an OperationalError subclass, caught next)
                except psycopg.OperationalError:
                    self._check(pool)
                    failures += 1
                    if not resend or failures > RESENDS:
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
            direct = connect_once(self.conninfo, self.dsn, connect_timeout=_PROBE_TIMEOUT)
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

    def _end_stuck_sessions(self, pool: psycopg_pool.ConnectionPool[Any]) -> int:
        """End the sessions on this schema stuck mid-pipeline past `STUCK_AFTER` (see ``end_stuck_sessions``)."""
        with self._checkout(pool) as conn:
            row = conn.execute(QUERIES["end_stuck_sessions"], (STUCK_AFTER,)).fetchone()
        ended = int(row[0]) if row else 0
        if ended:
            logger.warning("schema %s: ended %d session(s) stuck mid-statement", self.schema, ended)
        return ended

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
            conn.execute(QUERIES["notify"], (self.channel, payload))

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


def check_fence(cursor: psycopg.Cursor[Any], fence: Fence) -> None:
    """Raise `StaleTerm` unless ``fence`` is its role's current, live lease (in the caller's transaction).

    The lease row is share-locked until that transaction ends, so the role cannot pass
    to another node before the write it guards commits.
    """
    fleet.check_fence(cursor, QUERIES["check_fence"], fence)


class PostgresAdapter(ServerAdapter[Database]):
    """What every PostgreSQL adapter shares: its `Database`; `attach`, `detach`, `close` (`ServerAdapter`)."""

    def __init__(self, dsn: str, *, schema: str = "public", max_connections: int = 10) -> None:
        self.db = Database(dsn, check_schema(schema), max_connections=max_connections)

    def __repr__(self) -> str:
        # The DSN redacted: a repr ends up in logs and tracebacks.
        return f"<{type(self).__name__} {redact(self.db.dsn)!r} schema={self.db.schema!r}>"


class LeaseKeeper(PostgresAdapter):
    """An adapter that keeps role leases in its database (`PostgresRoleScheduler`), for the others to check."""

    keeps_leases = True
