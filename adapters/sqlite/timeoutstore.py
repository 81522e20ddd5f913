"""`SqliteTimeoutStore`: timeouts in a SQLite file."""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from actorflow.errors import TimeoutNotFound
from actorflow.protocols import Fence, TimeoutRecord

from .._sql import readable_timeouts, timeout_params
from ._db import SqliteAdapter, check_fence, from_micros, logger, to_micros

__all__ = ["SqliteTimeoutStore"]


class SqliteTimeoutStore(SqliteAdapter):
    """A timeout store in one SQLite file; ids start at 1 and are never reused.

    Constructing the store opens nothing; connections open on first use, one per thread.
    A row that cannot be read as a timeout (corrupted or foreign data) is logged and left
    out of the lists, so it never stops the poller.

    Args:
        path: the database file (shared with the other SQLite adapters); its directory
            must exist.
        synchronous: SQLite's ``synchronous`` setting; ``"FULL"`` (the default) is
            crash-safe, see `SqliteRecordStore`.
        busy_timeout: seconds to wait for the write lock held by another process or thread.
        file_mode: the permissions of a database file this adapter creates (default 0o600,
            owner only; ``None``: SQLite's default under the umask); an existing file keeps its own.
    """

    def create(
        self,
        workflow_name: str,
        foreign_id: str,
        run_id: str,
        status: int,
        expire_at: datetime,
        *,
        created_at: datetime | None = None,
        index: int | None = None,
        record_version: int | None = None,
        fence: Fence | None = None,
    ) -> int:
        """Store a timeout (which of the status's timeouts, set at which run version); returns its id.

        With ``fence``, only while that lease is current (else `StaleTerm`).
        """
        params = timeout_params(
            workflow_name, foreign_id, run_id, status, expire_at, created_at, index, record_version, to_micros
        )

        def insert(conn: sqlite3.Connection) -> int | None:
            if fence is not None:
                check_fence(conn, self._q, fence)
            return conn.execute(self._q["insert_timeout"], params).lastrowid

        timeout_id: int | None = self.db.write(insert)
        if timeout_id is None:  # pragma: no cover - an INSERT always sets it
            msg = "SQLite returned no id for the new timeout"
            raise RuntimeError(msg)
        return timeout_id

    def complete(self, id: int, *, fence: Fence | None = None) -> None:  # noqa: A002 - the contract's name
        """Mark a timeout completed; `TimeoutNotFound` for an unknown id; with ``fence``, as `create`."""
        self._change("complete_timeout", id, fence)

    def cancel(self, id: int, *, fence: Fence | None = None) -> None:  # noqa: A002 - the contract's name
        """Remove a timeout; `TimeoutNotFound` for an unknown id; with ``fence``, as `create`."""
        self._change("delete_timeout", id, fence)

    def _change(self, query: str, timeout_id: int, fence: Fence | None) -> None:
        def change(conn: sqlite3.Connection) -> int:
            if fence is not None:
                check_fence(conn, self._q, fence)
            return conn.execute(self._q[query], (timeout_id,)).rowcount

        if self.db.write(change) != 1:
            raise TimeoutNotFound(id=timeout_id)

    def list(self, workflow_name: str) -> builtins.list[TimeoutRecord]:
        """Uncompleted timeouts of the workflow, by id."""
        return self._timeouts(self.db.fetch(self._q["list_timeouts"], (workflow_name,)))

    def list_valid(self, workflow_name: str, status: int, now: datetime) -> builtins.list[TimeoutRecord]:
        """Uncompleted timeouts of the status that expired at or before ``now``, by id."""
        rows = self.db.fetch(self._q["list_valid_timeouts"], (workflow_name, int(status), to_micros(now)))
        return self._timeouts(rows)

    def _timeouts(self, rows: Iterable[Sequence[Any]]) -> builtins.list[TimeoutRecord]:
        return readable_timeouts(rows, from_micros, where=self.path, log=logger)
