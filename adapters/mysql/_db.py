"""A MySQL database as the adapters use it: the connection pool, running work on it, closing.

A `Database` is one DSN: a small pool of PyMySQL connections (a connection is not
thread-safe, so each is used by one thread at a time: taken from the pool, given back),
opened lazily and migrated when first opened, and `Database.run`, through which every
operation goes. A connection the server closed while it sat idle (a restart, a
``wait_timeout``, ``KILL``) is noticed before anything is sent on it and replaced. Work
whose connection is lost while it runs is sent again on a fresh one only when that is
safe (``resend``), and work that InnoDB rolled back whole (a deadlock, a lock wait
timeout) is run again. `MysqlAdapter` is what every adapter built on one shares.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import pymysql  # type: ignore[import-untyped,unused-ignore]

from actorflow._redact import redact
from actorflow.protocols import Fence

from .._lifecycle import Shared
from .._sql import fleet
from .._sql.server import ServerAdapter
from ._connect import CONNECT_TIMEOUT, Settings, connect, parse_dsn
from ._errors import MysqlError, logger, wrap_exceptions
from ._schema import QUERIES, migrate_on
from ._wakeups import Wakeups, wakeups_for

__all__ = [
    "QUERIES",
    "RESENDS",
    "Database",
    "LeaseKeeper",
    "MysqlAdapter",
    "check_fence",
    "from_db",
    "insert_events",
    "logger",
    "to_db",
    "transaction",
]

T = TypeVar("T")

RESENDS = 3
"""Resends of work whose connection was lost while it ran (a restart cuts every session, one after the other)."""
_RETRIES = 5  # runs of work InnoDB rolled back whole (deadlock, lock wait timeout)

# Client error codes of a connection that is gone: can't connect, server gone away, lost
# during a query, server lost, and a closed or broken connection (PyMySQL's own).
_LOST = frozenset({2003, 2006, 2013, 2014, 2055, 0})
# InnoDB's deadlock and lock wait timeout: the work's transaction (or statement) was rolled back.
_ROLLED_BACK = frozenset({1213, 1205})


def to_db(value: datetime) -> datetime:
    """A time as a DATETIME(6) column keeps it: naive, in UTC (a naive time is taken as UTC)."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def from_db(value: Any) -> datetime:
    """A DATETIME(6) value read back (naive UTC) as an aware UTC time; `TypeError` when it is not a time."""
    if not isinstance(value, datetime):
        msg = f"a stored time must be a DATETIME, got {value!r}"
        raise TypeError(msg)
    return value.replace(tzinfo=UTC)


def _lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection is gone (the outcome of the work in flight is unknown)."""
    if isinstance(exc, pymysql.err.InterfaceError | OSError):
        return True
    return isinstance(exc, pymysql.err.OperationalError) and bool(exc.args) and exc.args[0] in _LOST


def _rolled_back(exc: BaseException) -> bool:
    """Whether InnoDB gave up on the work's locks (a deadlock, a lock wait timeout): nothing was applied."""
    return isinstance(exc, pymysql.err.OperationalError) and bool(exc.args) and exc.args[0] in _ROLLED_BACK


def _cut(conn: Any) -> bool:
    """Whether the server already closed this idle connection: a local check, no round trip.

    An idle connection's socket has nothing to read unless the server said goodbye (an
    error packet, then end of file). Nothing has been sent on it yet, so taking another
    connection is safe for any work.
    """
    sock = getattr(conn, "_sock", None)
    if sock is None or not conn.open:
        return True
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):  # ValueError: a socket past select()'s limit
        return True


@contextlib.contextmanager
def transaction(conn: Any) -> Iterator[Any]:
    """``BEGIN`` ... ``COMMIT`` on ``conn``, a cursor for the block; rolled back when the block raises."""
    conn.begin()
    try:
        with conn.cursor() as cur:
            yield cur
        conn.commit()
    except BaseException:
        with contextlib.suppress(pymysql.err.Error, OSError):
            conn.rollback()
        raise


def insert_events(cur: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """Append event rows (`actorflow.adapters._sql.event_row`, times already converted) in the caller's transaction.

    Their sequence numbers are reserved first, by locking the sequence row (``reserve_events``),
    which stays locked until the transaction ends: call this last, right before the commit.
    """
    if not rows:
        return
    cur.execute(QUERIES["reserve_events"], (len(rows),))
    last = int(cur.lastrowid)
    first = last - len(rows) + 1
    cur.executemany(QUERIES["insert_event"], [(first + i, *row) for i, row in enumerate(rows)])


class _Pool:
    """Up to ``size`` connections, each used by one thread at a time; idle ones are kept for reuse."""

    def __init__(self, make: Callable[[], Any], size: int) -> None:
        self._make = make
        self._size = size
        self._idle: list[Any] = []
        self._open = 0
        self._closed = False
        self._cond = threading.Condition()

    def get(self, timeout: float) -> Any:
        """An idle connection, a new one while under ``size``, else one given back within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    msg = "the connection pool is closed"
                    raise MysqlError(msg)
                if self._idle:
                    return self._idle.pop()
                if self._open < self._size:
                    self._open += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    msg = f"no database connection free within {timeout}s ({self._size} in use)"
                    raise MysqlError(msg)
                self._cond.wait(remaining)
        try:
            return self._make()
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def adopt(self, conn: Any) -> None:
        """Keep ``conn``, made outside the pool, as one of its idle connections."""
        with self._cond:
            self._open += 1
            self._idle.append(conn)
            self._cond.notify()

    def put(self, conn: Any, *, broken: bool = False) -> None:
        """Give ``conn`` back (closed instead when ``broken`` or the pool is closed)."""
        with self._cond:
            keep = not broken and not self._closed
            if keep:
                self._idle.append(conn)
            else:
                self._open -= 1
            self._cond.notify()
        if not keep:
            _close_quietly(conn)

    def close(self) -> None:
        """Close the idle connections; those in use are closed when given back."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            _close_quietly(conn)

    @property
    def open_connections(self) -> int:
        """Connections open now (idle or in use)."""
        with self._cond:
            return self._open


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(pymysql.err.Error, OSError):
        conn.close()


class Database(Shared):
    """One MySQL database, shared by the adapters made for it (one `Database` per adapter)."""

    def __init__(self, dsn: str, *, max_connections: int = 10) -> None:
        super().__init__()
        self.dsn = dsn
        self.settings: Settings = parse_dsn(dsn)
        self._max = max_connections
        self._lock = threading.Lock()
        self._pool: _Pool | None = None
        self._on_close: list[Callable[[], None]] = []
        self.wakeups: Wakeups = wakeups_for(self.identity)
        self.queries: Mapping[str, str] = QUERIES

    def __repr__(self) -> str:
        return f"<Database {redact(self.dsn)!r}>"

    @property
    def identity(self) -> tuple[str, int, str]:
        """What makes two adapters share a database: server, port and database."""
        return self.settings.identity

    def _connect(self) -> Any:
        return connect(self.settings, self.dsn)

    def pool(self) -> _Pool:
        """The connection pool, opened (and the database migrated) on first use."""
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._pool is None:
                # Connect once first: a wrong DSN or a server that is away fails here with the
                # driver's reason; the connection migrates the database, then joins the pool.
                conn = self._connect()
                try:
                    with wrap_exceptions("migration"):
                        migrate_on(conn, self.settings)
                except BaseException:
                    _close_quietly(conn)
                    raise
                pool = _Pool(self._connect, self._max)
                pool.adopt(conn)
                self._pool = pool
            return self._pool

    def open(self) -> None:
        """Connect (and migrate) now: a wrong DSN or an unreachable server fails here."""
        self.pool()

    def open_connections(self) -> int:
        """Connections of this database's pool open now (0 once closed)."""
        pool = self._pool
        return 0 if pool is None else pool.open_connections

    def run(self, what: str, fn: Callable[[Any], T], *, resend: bool = True) -> T:
        """``fn(conn)`` on a pooled connection (autocommit: ``fn`` opens its own transaction), errors as `MysqlError`.

        A connection the server closed while idle is replaced before anything is sent on
        it: safe for any work. Work that InnoDB rolled back whole (deadlock, lock wait
        timeout) is run again. A connection lost *while* ``fn`` runs leaves its outcome
        unknown (its commit may or may not have been applied): with ``resend`` (the
        default) ``fn`` runs again on a fresh connection, up to `RESENDS` times, so it
        must be harmless to repeat (reads are; writes are conditioned on versions, or
        duplicates the engine absorbs). Work that is not passes ``resend=False``.
        """
        with wrap_exceptions(what):
            pool = self.pool()
            sends = retries = cut = 0
            while True:
                conn = pool.get(CONNECT_TIMEOUT)
                if _cut(conn):
                    pool.put(conn, broken=True)
                    cut += 1
                    if cut <= self._max + 1:
                        continue
                    conn = pool.get(CONNECT_TIMEOUT)  # every idle one was cut: a fresh one
                try:
                    result = fn(conn)
                except BaseException as exc:
                    if _lost(exc):
                        pool.put(conn, broken=True)
                        if not resend or sends >= RESENDS:
                            raise
                        sends += 1
                        logger.info("%s: the connection was lost, sending again", what)
                        continue
                    pool.put(conn)
                    if _rolled_back(exc) and retries < _RETRIES:
                        retries += 1
                        continue
                    raise
                pool.put(conn)
                return result

    def fetchone(self, what: str, query: str, params: Any = (), *, resend: bool = True) -> Any:
        """The first row of ``query`` (``None`` when there is none)."""

        def fetch(conn: Any) -> Any:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchone()

        return self.run(what, fetch, resend=resend)

    def fetchall(self, what: str, query: str, params: Any = ()) -> list[Any]:
        """Every row of ``query``."""

        def fetch(conn: Any) -> list[Any]:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return list(cur.fetchall())

        return self.run(what, fetch)

    def execute(self, what: str, query: str, params: Any = (), *, resend: bool = True) -> int:
        """Run ``query``; the rows it matched."""

        def work(conn: Any) -> int:
            with conn.cursor() as cur:
                return int(cur.execute(query, params))

        return self.run(what, work, resend=resend)

    def on_close(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` when the database is closed (a thread using it stops)."""
        with self._lock:
            self._on_close.append(fn)

    def close(self) -> None:
        """Stop what uses the pool, then close it; the adapters can be opened again later."""
        with self._lock:
            closers = list(self._on_close)
        for closer in closers:
            closer()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


def check_fence(cur: Any, fence: Fence) -> None:
    """Raise `StaleTerm` unless ``fence`` is its role's current, live lease (in the caller's transaction).

    The lease row is share-locked until that transaction ends, so the role cannot pass
    to another node before the write it guards commits.
    """
    fleet.check_fence(cur, QUERIES["check_fence"], fence)


class MysqlAdapter(ServerAdapter[Database]):
    """What every MySQL adapter shares: its `Database`; `attach`, `detach`, `close` (`ServerAdapter`)."""

    def __init__(self, dsn: str, *, max_connections: int = 10) -> None:
        self.db = Database(dsn, max_connections=max_connections)

    def __repr__(self) -> str:
        # The DSN redacted: a repr ends up in logs and tracebacks.
        return f"<{type(self).__name__} {redact(self.db.dsn)!r}>"


class LeaseKeeper(MysqlAdapter):
    """An adapter that keeps role leases in its database (`MysqlRoleScheduler`), for the others to check."""

    keeps_leases = True
