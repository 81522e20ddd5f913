"""One SQLite file: its connections, pragmas, migrations and errors.

Every SQLite adapter holds a `Database`. Connections are opened lazily, one per thread
for reads (a `sqlite3.Connection` must not be used by two threads at once) and one for
writes, which the `Hub` lets one thread at a time use, in autocommit mode with explicit
``BEGIN IMMEDIATE`` for writes, so a transaction takes the write lock at its start and
never fails half-way with ``SQLITE_BUSY``. The first connection applies the versioned
migrations.

Writes go through the file's `Hub` (see ``_hub.py``): writers of this process are
grouped into shared commits instead of queueing on SQLite's busy handler, which sleeps
in growing steps; the busy timeout then only covers other processes. After a commit the
writer bumps the hub, which wakes receivers and the outbox waiter of this process at
once; writes of other processes are seen by polling.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from actorflow.errors import ActorflowError
from actorflow.options import duration
from actorflow.protocols import Fence, RoleScheduler

from .._sql import fleet
from ._hub import Hub, Work, hub_for
from ._schema import migrate, queries

__all__ = [
    "FILE_MODE",
    "SYNCHRONOUS",
    "Database",
    "Hub",
    "LeaseKeeper",
    "SqliteAdapter",
    "SqliteError",
    "check_fence",
    "events_key",
    "from_micros",
    "logger",
    "outbox_key",
    "to_micros",
    "wrap_exceptions",
]

logger = logging.getLogger("actorflow.adapters.sqlite")

SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
FILE_MODE = 0o600  # a new database file is readable by its owner only (SQLite gives -wal/-shm the same)

# How often, at most, a write is followed by a checkpoint (see `Database.write`), in seconds.
_CHECKPOINT_EVERY = 0.05

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class SqliteError(ActorflowError):
    """The SQLite database could not be used."""


SqliteError.__module__ = "actorflow.adapters.sqlite"


# -- times ---------------------------------------------------------------------------------


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch, UTC (exact: integer arithmetic); naive times are UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND


def from_micros(value: Any) -> datetime:
    """The timezone-aware UTC time of a stored microsecond count; ValueError if it is not one."""
    if type(value) is not int:
        msg = f"a stored time must be an integer count of microseconds, got {value!r}"
        raise ValueError(msg)
    return _EPOCH + timedelta(microseconds=value)


# -- errors --------------------------------------------------------------------------------


def _explain(path: str, exc: sqlite3.Error) -> str:
    text = str(exc)
    if "file is not a database" in text:
        return (
            f"{path} is not a SQLite database ({text}): pass the path of an actorflow database, "
            "or of a file that does not exist yet"
        )
    if "locked" in text or "busy" in text:
        return (
            f"the SQLite database {path} stayed locked by another process past the busy timeout ({text}): "
            "raise busy_timeout, or stop the process that holds a long transaction"
        )
    if "unable to open" in text:
        return f"cannot open the SQLite database {path} ({text}): check that it is a writable file path"
    return f"SQLite error on {path}: {text}"


@contextlib.contextmanager
def wrap_exceptions(path: str) -> Iterator[None]:
    """Turn the driver's errors into `SqliteError` (the cause kept on ``__cause__``)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise SqliteError(_explain(path, exc), path=path) from exc


# -- in-process wake-ups ---------------------------------------------------------------------


def events_key(topic: str) -> str:
    """The `Hub` key bumped when events of ``topic`` are committed."""
    return "events:" + topic


def outbox_key(workflow_name: str) -> str:
    """The `Hub` key bumped when outbox events of ``workflow_name`` are committed."""
    return "outbox:" + workflow_name


# -- connections -----------------------------------------------------------------------------


def _resolve(path: str | os.PathLike[str]) -> str:
    raw = os.fspath(path)
    if not raw or raw == ":memory:" or raw.startswith("file:"):
        msg = (
            f"path must name a database file, got {raw!r}: the adapters open one connection per "
            "thread, and an in-memory database is private to its connection"
        )
        raise ValueError(msg)
    return str(Path(raw).expanduser().resolve())


class _Holder:
    """A thread's connection (or the writes'); when the thread ends its holder is collected and closes it."""

    __slots__ = ("__weakref__", "connection", "generation")

    def __init__(self, connection: sqlite3.Connection, generation: int) -> None:
        self.connection = connection
        self.generation = generation


class Database:
    """Connections to one SQLite file: lazy, one per thread for reads and one for writes, all closed by `close`.

    Writes go through one connection, whichever thread leads the commit (the `Hub` lets
    one at a time in): SQLite drops a connection's page cache when another connection
    wrote since its last transaction, so writes that hop between the threads' connections
    read every page they touch again. One writer keeps it, and keeps its busy timeout at
    0 for good (`_begin_immediate` waits for the lock itself), sparing two statements a
    commit. Its commits leave checkpoints to `write`'s caller (`_checkpoint`).

    Args:
        path: the database file; its directory must exist. It is created, with its
            tables, on first use.
        synchronous: SQLite's ``synchronous`` pragma (see the adapters' docstrings).
        busy_timeout: seconds to wait for a write lock held by another thread or process.
        file_mode: the permissions a new database file is created with (exactly, whatever
            the umask); ``None`` leaves it to SQLite (0o644 under the usual umask). An
            existing file's permissions are never changed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
        file_mode: int | None = FILE_MODE,
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS:
            msg = f"synchronous must be one of {', '.join(SYNCHRONOUS)}, got {synchronous!r}"
            raise ValueError(msg)
        if file_mode is not None and (
            not isinstance(file_mode, int) or isinstance(file_mode, bool) or file_mode & ~0o777
        ):
            msg = f"file_mode must be permission bits between 0o000 and 0o777, or None, got {file_mode!r}"
            raise ValueError(msg)
        self.path = _resolve(path)
        self.hub = hub_for(self.path)
        self.queries = queries()
        self.applied: list[int] = []
        self._synchronous = synchronous.upper()
        self._busy_timeout = duration("busy_timeout", busy_timeout, positive=True)
        self._file_mode = file_mode
        self._local = threading.local()
        self._lock = threading.Lock()  # guards the bookkeeping below, never held during I/O
        self._finalizers: set[weakref.finalize[Any, Any]] = set()
        self._writer: _Holder | None = None
        self._checkpoint_due = 0.0  # monotonic time of the next checkpoint after a write
        self._generation = 0
        self._migrated = False

    def connection(self) -> sqlite3.Connection:
        """The calling thread's connection, opened (and the schema migrated) on first use."""
        holder: _Holder | None = getattr(self._local, "holder", None)
        if holder is not None and holder.generation == self._generation:
            return holder.connection
        connection = self._open()
        with self._lock:
            holder = _Holder(connection, self._generation)
            finalizer = weakref.finalize(holder, connection.close)
            self._finalizers = {f for f in self._finalizers if f.alive}
            self._finalizers.add(finalizer)
        self._local.holder = holder
        return connection

    def _write_connection(self) -> sqlite3.Connection:
        """The connection writes use (see the class), opened on first use."""
        holder = self._writer
        if holder is not None and holder.generation == self._generation:
            return holder.connection
        connection = self._open()
        try:
            with wrap_exceptions(self.path):
                connection.execute("PRAGMA busy_timeout = 0")
                connection.execute("PRAGMA wal_autocheckpoint = 0")  # write() checkpoints
        except BaseException:
            connection.close()
            raise
        with self._lock:
            holder = self._writer
            if holder is not None and holder.generation == self._generation:
                connection.close()  # another thread opened it meanwhile
                return holder.connection
            holder = _Holder(connection, self._generation)
            self._finalizers.add(weakref.finalize(holder, connection.close))
            self._writer = holder
        return connection

    def open_connections(self) -> int:
        """How many connections are open now (for tests: `close` leaves none)."""
        with self._lock:
            return sum(1 for f in self._finalizers if f.alive)

    def close(self) -> None:
        """Close every connection this object opened, in every thread.

        Call it once the threads using the adapter are done (after ``wf.stop()``); the
        adapter opens new connections if it is used again.
        """
        with self._lock:
            finalizers, self._finalizers = self._finalizers, set()
            self._writer = None
            self._generation += 1
        for finalizer in finalizers:
            finalizer()

    def _open(self) -> sqlite3.Connection:
        folder = Path(self.path).parent
        if not folder.is_dir():
            msg = (
                f"cannot open the SQLite database {self.path}: the directory {folder} does not exist; "
                "create it first or pass a path in an existing directory"
            )
            raise SqliteError(msg, path=self.path)
        with wrap_exceptions(self.path):
            self._create_file()
            connection = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
        try:
            # One thread of this process at a time sets a new file up (see _use_wal).
            with self.hub.setup_lock, wrap_exceptions(self.path):
                self._use_wal(connection)
                connection.execute(f"PRAGMA synchronous = {self._synchronous}")
                self._migrate(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _create_file(self) -> None:
        """Create the database file, empty, with ``file_mode`` when it does not exist yet.

        ``O_EXCL``: when another process creates it first, or it exists, it is left as it
        is. SQLite takes an empty file as a new database, and creates its ``-wal`` and
        ``-shm`` files with the main file's permissions.
        """
        if self._file_mode is None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, self._file_mode)
        except FileExistsError:
            return
        except OSError as exc:
            msg = (
                f"cannot create the SQLite database {self.path} ({exc.strerror}): check that its directory is writable"
            )
            raise SqliteError(msg, path=self.path) from exc
        try:
            os.fchmod(fd, self._file_mode)  # exactly the mode asked for, whatever the umask
        finally:
            os.close(fd)

    def _use_wal(self, connection: sqlite3.Connection) -> None:
        """Put the file in WAL mode (kept in the file): readers and the writer never block each other.

        Switching a new file to WAL needs it to itself, and SQLite reports a concurrent
        switch as "locked" at once, without its busy handler: retry until the busy timeout.
        """
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.001
        while True:
            try:
                if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    connection.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)  # another connection is switching the file: back off briefly
                delay = min(delay * 2, 0.05)
            else:
                return

    def _migrate(self, connection: sqlite3.Connection) -> None:
        """Apply the migrations this file lacks, once per `Database` (see `_schema.migrate`).

        Not through the hub: this connection is not this thread's yet. SQLite's own lock
        (and the busy timeout) keep other connections out meanwhile.
        """
        with self._lock:
            if self._migrated:
                return
        applied = migrate(connection, where=f"the SQLite database {self.path}", error=self._schema_error)
        with self._lock:
            self.applied.extend(applied)
            self._migrated = True

    def _schema_error(self, message: str) -> SqliteError:
        return SqliteError(message, path=self.path)

    def write(self, work: Work, *, sync: bool = True) -> Any:
        """Run ``work(connection)`` in a write transaction (maybe shared, see `Hub`); its result.

        ``work`` must use only the connection it is given (it may run on another thread
        of this process, inside a savepoint of that thread's transaction). An exception
        it raises rolls back its own writes and is raised here; a driver error comes out
        as `SqliteError`.

        ``sync=False`` lets the commit skip syncing the write-ahead log (``synchronous =
        NORMAL``) when nothing else in it needs the sync. Such a commit survives a process
        crash; on a power loss it may be lost, but only together with every commit after
        it, since the log is written in order and the next synced commit syncs it too.
        For writes whose loss only repeats work (a receiver's cursor).
        """
        conn = self._write_connection()
        level = self._synchronous
        if not sync and level in ("FULL", "EXTRA"):
            level = "NORMAL"
        with wrap_exceptions(self.path):
            result = self.hub.write(conn, work, level, self._synchronous, self._busy_timeout, handler_off=True)
        self._checkpoint()
        return result

    def _checkpoint(self) -> None:
        """Copy the write-ahead log into the file, if the last checkpoint was `_CHECKPOINT_EVERY` ago.

        SQLite's own checkpoint runs inside the commit that grows the log past 1000 pages,
        while every other writer of the file waits for it: the writes' connection has it
        off, and the thread that wrote checkpoints here, outside the commit, on its own
        connection. ``PASSIVE``, as SQLite's: it copies what no reader still needs and
        never waits. The write is in already: a checkpoint that fails leaves it to the next.
        """
        now = time.monotonic()
        if now < self._checkpoint_due:
            return
        self._checkpoint_due = now + _CHECKPOINT_EVERY
        try:
            self.connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except (sqlite3.Error, SqliteError) as exc:
            logger.debug("%s: checkpoint left to the next write: %s", self.path, exc)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside it sees the same committed state."""
        conn = self.connection()
        with wrap_exceptions(self.path):
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def fetch(self, query: str, params: Iterable[Any] = ()) -> list[Any]:
        """The rows of one read query (its own implicit transaction)."""
        with wrap_exceptions(self.path):
            return self.connection().execute(query, tuple(params)).fetchall()


def check_fence(conn: sqlite3.Connection, queries: Mapping[str, str], fence: Fence) -> None:
    """Raise `StaleTerm` unless ``fence`` is its role's current, live lease (inside a write transaction).

    The transaction's write lock keeps every other process out until it commits, so the
    role cannot pass to another node before the write it guards is in.
    """
    fleet.check_fence(conn.cursor(), queries["check_fence"], fence)


class SqliteAdapter:
    """What every SQLite adapter shares: its file, `close`, and use as a context manager.

    Attributes:
        db: the adapter's `Database` (its connections, write path and named queries),
            as the PostgreSQL adapters' ``db``: for the adapter's helpers, and for tests
            that look at the file's connections and pragmas.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
        file_mode: int | None = FILE_MODE,
    ) -> None:
        self.db = Database(path, synchronous=synchronous, busy_timeout=busy_timeout, file_mode=file_mode)
        self._q = self.db.queries

    def fences_with(self, role_scheduler: RoleScheduler) -> bool:
        """True when ``role_scheduler`` keeps its leases in this file (a `SqliteRoleScheduler` on the same path)."""
        return isinstance(role_scheduler, LeaseKeeper) and role_scheduler.path == self.path

    @property
    def path(self) -> str:
        """The database file, resolved to an absolute path."""
        return self.db.path

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r}>"

    def close(self) -> None:
        """Close every connection the adapter opened (it reopens them if used again)."""
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class LeaseKeeper(SqliteAdapter):
    """An adapter that keeps role leases in its database (`SqliteRoleScheduler`).

    The other adapters on the same database can then check those leases in their own
    transactions (`fences_with`).
    """
