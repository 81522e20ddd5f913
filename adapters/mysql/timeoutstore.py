"""`MysqlTimeoutStore`: timeouts in MySQL/MariaDB, optionally fenced by a role's lease."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from actorflow.errors import TimeoutNotFound
from actorflow.protocols import Fence, TimeoutRecord

from .._sql import readable_timeouts, timeout_params
from ._db import QUERIES, MysqlAdapter, check_fence, from_db, logger, to_db, transaction

T = TypeVar("T")

__all__ = ["MysqlTimeoutStore"]


class MysqlTimeoutStore(MysqlAdapter):
    """A timeout store in MySQL/MariaDB.

    Args:
        dsn: ``mysql://user[:password]@host[:port]/database``.
        max_connections: the pool's size.
    """

    def __init__(self, dsn: str, *, max_connections: int = 4) -> None:
        super().__init__(dsn, max_connections=max_connections)

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

        With ``fence``, only while that lease is current (else `StaleTerm`). Sent again
        after a connection lost mid-write: a timeout stored twice is harmless, the second
        one is cancelled when it expires, as its run moved on.
        """
        params = timeout_params(
            workflow_name, foreign_id, run_id, status, expire_at, created_at, index, record_version, to_db
        )

        def insert(cur: Any) -> int:
            cur.execute(QUERIES["create_timeout"], params)
            return int(cur.lastrowid)

        return self._write("creating a timeout", fence, insert)

    def complete(self, id: int, *, fence: Fence | None = None) -> None:  # noqa: A002 - the contract's name
        """Mark a timeout completed; with ``fence``, only while that lease is current (else `StaleTerm`)."""
        changed = self._write(
            "completing a timeout", fence, lambda cur: int(cur.execute(QUERIES["complete_timeout"], (id,)))
        )
        if changed == 0:
            raise TimeoutNotFound(id=id)

    def cancel(self, id: int, *, fence: Fence | None = None) -> None:  # noqa: A002 - the contract's name
        """Remove a timeout; `TimeoutNotFound` for an unknown id; with ``fence``, as `complete`."""
        attempts = 0

        def delete(cur: Any) -> int:
            nonlocal attempts
            attempts += 1
            return int(cur.execute(QUERIES["cancel_timeout"], (id,)))

        # Sent again after a lost connection, nothing to delete means the first send did it.
        if self._write("cancelling a timeout", fence, delete) == 0 and attempts == 1:
            raise TimeoutNotFound(id=id)

    def _write(self, what: str, fence: Fence | None, fn: Callable[[Any], T]) -> T:
        """``fn(cursor)`` in a transaction that first checks ``fence`` (when given) against the leases."""

        def work(conn: Any) -> T:
            with transaction(conn) as cur:
                if fence is not None:
                    check_fence(cur, fence)
                return fn(cur)

        return self.db.run(what, work)

    def list(self, workflow_name: str) -> builtins.list[TimeoutRecord]:
        """Uncompleted timeouts of the workflow, by id."""
        return self._timeouts(self.db.fetchall("listing timeouts", QUERIES["list_timeouts"], (workflow_name,)))

    def list_valid(self, workflow_name: str, status: int, now: datetime) -> builtins.list[TimeoutRecord]:
        """Uncompleted timeouts of the status that expired at or before ``now``, by id."""
        rows = self.db.fetchall(
            "listing expired timeouts", QUERIES["list_valid_timeouts"], (workflow_name, int(status), to_db(now))
        )
        return self._timeouts(rows)

    def _timeouts(self, rows: builtins.list[Any]) -> builtins.list[TimeoutRecord]:
        return readable_timeouts(rows, from_db, where=f"MySQL database {self.db.settings.database}", log=logger)
