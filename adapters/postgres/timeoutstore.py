"""`PostgresTimeoutStore`: timeouts in PostgreSQL."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from actorflow.errors import TimeoutNotFound
from actorflow.protocols import Fence, TimeoutRecord

from .._sql import readable_timeouts, timeout_params
from ._db import PostgresAdapter, check_fence
from ._errors import logger
from ._schema import QUERIES

T = TypeVar("T")

__all__ = ["PostgresTimeoutStore"]


class PostgresTimeoutStore(PostgresAdapter):
    """A timeout store in PostgreSQL.

    Args:
        dsn: a libpq connection string or URL.
        schema: the schema the tables live in (created if missing).
        max_connections: the pool's size.
    """

    def __init__(self, dsn: str, *, schema: str = "public", max_connections: int = 4) -> None:
        super().__init__(dsn, schema=schema, max_connections=max_connections)

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

        Sent again after a connection lost mid-write, like everything the inserter does
        (its event is handled again after a failure anyway): a timeout stored twice is
        harmless, the second one is cancelled when it expires, as its run moved on.
        """
        params = timeout_params(workflow_name, foreign_id, run_id, status, expire_at, created_at, index, record_version)
        row = self._write(
            "creating a timeout", fence, lambda cur: cur.execute(QUERIES["create_timeout"], params).fetchone()
        )
        return int(row[0]) if row else 0

    def complete(self, id: int, *, fence: Fence | None = None) -> None:  # noqa: A002 - the contract's name
        """Mark a timeout completed; with ``fence``, only while that lease is current (else `StaleTerm`)."""
        changed = self._write(
            "completing a timeout", fence, lambda cur: cur.execute(QUERIES["complete_timeout"], (id,)).rowcount
        )
        if changed == 0:
            raise TimeoutNotFound(id=id)

    def cancel(self, id: int, *, fence: Fence | None = None) -> None:  # noqa: A002 - the contract's name
        """Remove a timeout; `TimeoutNotFound` for an unknown id; with ``fence``, as `complete`."""
        attempts = 0

        def delete(cur: psycopg.Cursor[Any]) -> int:
            nonlocal attempts
            attempts += 1
            return cur.execute(QUERIES["cancel_timeout"], (id,)).rowcount

        # Sent again after a lost connection, nothing to delete means the first send did it.
        if self._write("cancelling a timeout", fence, delete) == 0 and attempts == 1:
            raise TimeoutNotFound(id=id)

    def _write(self, what: str, fence: Fence | None, fn: Callable[[psycopg.Cursor[Any]], T]) -> T:
        """``fn(cursor)`` in a transaction that first checks ``fence`` (when given) against the leases."""

        def work(conn: psycopg.Connection[Any]) -> T:
            with conn.transaction(), conn.cursor() as cur:  # no pipeline: the row counts are read at once
                if fence is not None:
                    check_fence(cur, fence)
                return fn(cur)

        return self.db.run(what, work)

    def list(self, workflow_name: str) -> builtins.list[TimeoutRecord]:
        """Uncompleted timeouts of the workflow, by id."""
        rows = self.db.fetchall("listing timeouts", QUERIES["list_timeouts"], (workflow_name,))
        return self._timeouts(rows)

    def list_valid(self, workflow_name: str, status: int, now: datetime) -> builtins.list[TimeoutRecord]:
        """Uncompleted timeouts of the status that expired at or before ``now``, by id."""
        rows = self.db.fetchall(
            "listing expired timeouts", QUERIES["list_valid_timeouts"], (workflow_name, int(status), now)
        )
        return self._timeouts(rows)

    def _timeouts(self, rows: builtins.list[tuple[object, ...]]) -> builtins.list[TimeoutRecord]:
        return readable_timeouts(rows, where=f"schema {self.db.schema}", log=logger)
