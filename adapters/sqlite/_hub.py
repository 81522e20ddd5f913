"""What the SQLite adapters of one file share within a process: group commit and wake-ups.

**Group commit.** SQLite lets one writer at a time into a file, and with
``synchronous=FULL`` every commit waits for the disk (a few hundred microseconds). When
several threads of a node write at once (step consumers of different statuses, a
trigger, a receiver's ack), committing each alone makes them queue for the disk one by
one. Instead a writer queues its work; the first writer to find no commit in progress
becomes the leader, takes every queued work, runs each in a savepoint of one
``BEGIN IMMEDIATE`` transaction on the connection it writes with, and commits once. A
work that raises is rolled back to its savepoint and its error handed to its writer; the
others commit. Writers arriving during a commit are taken by the next leader. With one writer
this is a plain transaction.

**Wake-ups.** Each key (a topic's events, a workflow's outbox) has a counter bumped
after every commit that wrote to it; waiters wait for it to move, and also poll for the
writes of other processes (`actorflow.adapters._sql.wakeups`).
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .._sql.wakeups import PerProcess, Wakeups

__all__ = ["Hub", "Work", "hub_for", "immediate_transaction"]

# SQLite's synchronous levels, weakest first.
_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")

Work = Callable[[sqlite3.Connection], Any]
"""A write: runs inside a transaction, using only the connection it is given.

It returns a plain value, never a cursor: a cursor freed on the writer's thread would
reset a statement of the leader's connection while the leader uses it.
"""


class _Op:
    __slots__ = ("done", "error", "level", "result", "work")

    def __init__(self, work: Work, level: str) -> None:
        self.work = work
        self.level = level
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False


class Hub(Wakeups):
    """Group commit and wake-ups (the `Wakeups` it is) for one database file (one per file per process)."""

    def __init__(self) -> None:
        super().__init__()
        self.setup_lock = threading.Lock()  # one thread at a time opens and migrates the file
        self._commit = threading.Condition(threading.Lock())
        self._queue: list[_Op] = []
        self._leading = False

    # -- group commit ---------------------------------------------------------------------

    def write(
        self,
        connection: sqlite3.Connection,
        work: Work,
        level: str,
        synchronous: str,
        busy_timeout: float,
        *,
        handler_off: bool = False,
    ) -> Any:
        """Run ``work`` in a transaction committed with ``level`` durability; its result.

        ``connection`` is the one the caller writes with (used if it leads the commit),
        ``synchronous`` the level that connection is set to between transactions, and
        ``busy_timeout`` how long to wait for the file's write lock held by another process.
        ``handler_off``: the connection's busy timeout is 0 already (see `_begin_immediate`).
        """
        op = _Op(work, level)
        with self._commit:
            self._queue.append(op)
            while self._leading and not op.done:
                self._commit.wait()
            lead = not op.done
            if lead:
                self._leading = True
                batch, self._queue = self._queue, []
        if lead:
            try:
                _run(connection, batch, synchronous, busy_timeout, handler_off)
            finally:
                with self._commit:
                    self._leading = False
                    self._commit.notify_all()
        if op.error is not None:
            raise op.error
        return op.result

    @property
    def leading(self) -> bool:
        """Whether a writer is committing a batch now (for diagnostics and tests)."""
        with self._commit:
            return self._leading

    @property
    def queued(self) -> int:
        """How many writes wait for the next commit (for diagnostics and tests)."""
        with self._commit:
            return len(self._queue)


# Pauses between attempts at the write lock while another process holds it: the first, the longest.
_FIRST_PAUSE, _LONGEST_PAUSE = 0.0001, 0.002


def _pause(seconds: float) -> None:
    """Wait before the next attempt at the write lock (a seam for tests)."""
    time.sleep(seconds)


def _begin_immediate(connection: sqlite3.Connection, busy_timeout: float, *, handler_off: bool = False) -> None:
    """``BEGIN IMMEDIATE``, retried in short jittered pauses while another process writes.

    SQLite's own busy handler sleeps 1, 2, 5, 10... then 100 ms between attempts. A process
    whose neighbour commits back to back keeps missing the short gaps between its commits:
    two node processes on one file ran one at a third of a core, the other at a whole one.
    Pauses of 0.1-2 ms catch the gaps. Gives up after ``busy_timeout`` seconds, as SQLite would.
    SQLite's handler is turned off for the attempts and on again after, unless ``handler_off``
    says the connection keeps it off: each statement costs the GIL handed back and forth.
    """
    if not handler_off:
        connection.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = time.monotonic() + busy_timeout
        pause = _FIRST_PAUSE
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
            else:
                return
            _pause(pause * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not secrecy
            pause = min(pause * 2, _LONGEST_PAUSE)
    finally:
        if not handler_off:
            connection.execute(f"PRAGMA busy_timeout = {round(busy_timeout * 1000)}")


@contextlib.contextmanager
def immediate_transaction(
    connection: sqlite3.Connection, busy_timeout: float | None = None, *, handler_off: bool = False
) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back (if still open) when the block raises.

    With ``busy_timeout``, the write lock is waited for in short pauses (`_begin_immediate`);
    without, by SQLite's busy handler.
    """
    if busy_timeout is None:
        connection.execute("BEGIN IMMEDIATE")
    else:
        _begin_immediate(connection, busy_timeout, handler_off=handler_off)
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        raise


def _run(conn: sqlite3.Connection, batch: list[_Op], synchronous: str, busy_timeout: float, handler_off: bool) -> None:
    """Commit ``batch`` in one transaction (the leader's side of `Hub.write`)."""
    level = max((op.level for op in batch), key=_LEVELS.index)
    try:
        if level != synchronous:
            conn.execute(f"PRAGMA synchronous = {level}")
        try:
            with immediate_transaction(conn, busy_timeout, handler_off=handler_off):
                if len(batch) == 1:
                    batch[0].result = _plain(batch[0].work(conn))  # alone: an error rolls back everything
                else:
                    for op in batch:
                        _run_in_savepoint(conn, op)
        finally:
            if level != synchronous:
                conn.execute(f"PRAGMA synchronous = {synchronous}")
    except BaseException as exc:  # noqa: BLE001 - handed to every writer of the batch, each raises it
        for op in batch:  # nothing of the batch was committed
            if op.error is None:
                op.error = exc
    finally:
        for op in batch:
            op.done = True


def _run_in_savepoint(conn: sqlite3.Connection, op: _Op) -> None:
    conn.execute("SAVEPOINT work")
    try:
        op.result = _plain(op.work(conn))
    except Exception as exc:  # noqa: BLE001 - the error belongs to the op's writer, raised there
        conn.execute("ROLLBACK TO work")
        op.error = exc
    conn.execute("RELEASE work")


def _plain(result: Any) -> Any:
    """``result``, unless it is a cursor: that is closed here, on the leader's thread (see `Work`)."""
    if isinstance(result, sqlite3.Cursor):
        result.close()
        return None
    return result


_hubs = PerProcess(Hub)


def hub_for(path: str) -> Hub:
    """The hub of the database file ``path`` (resolved), made on first use."""
    return _hubs.get(path)
