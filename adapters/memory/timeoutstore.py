"""`MemoryTimeoutStore`: timeouts in memory."""

from __future__ import annotations

import builtins
import dataclasses
import itertools
import threading
from datetime import UTC, datetime

from actorflow.errors import TimeoutNotFound
from actorflow.protocols import TimeoutRecord, check_timeout_visit

__all__ = ["MemoryTimeoutStore"]


class MemoryTimeoutStore:
    """A thread-safe timeout store in memory; ids start at 1."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._timeouts: dict[int, TimeoutRecord] = {}

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
    ) -> int:
        """Store a timeout (which of the status's timeouts, set at which run version); returns its id."""
        check_timeout_visit(index, record_version)
        with self._lock:
            timeout_id = next(self._ids)
            self._timeouts[timeout_id] = TimeoutRecord(
                id=timeout_id,
                workflow_name=workflow_name,
                foreign_id=foreign_id,
                run_id=run_id,
                status=int(status),
                completed=False,
                expire_at=expire_at,
                created_at=created_at or datetime.now(UTC),
                index=index,
                record_version=record_version,
            )
            return timeout_id

    def complete(self, id: int) -> None:  # noqa: A002 - the contract's name
        """Mark a timeout completed."""
        with self._lock:
            found = self._timeouts.get(id)
            if found is None:
                raise TimeoutNotFound(id=id)
            self._timeouts[id] = dataclasses.replace(found, completed=True)

    def cancel(self, id: int) -> None:  # noqa: A002 - the contract's name
        """Remove a timeout."""
        with self._lock:
            if self._timeouts.pop(id, None) is None:
                raise TimeoutNotFound(id=id)

    def list(self, workflow_name: str) -> builtins.list[TimeoutRecord]:
        """Uncompleted timeouts of the workflow, by id."""
        with self._lock:
            return [t for t in self._timeouts.values() if t.workflow_name == workflow_name and not t.completed]

    def list_valid(self, workflow_name: str, status: int, now: datetime) -> builtins.list[TimeoutRecord]:
        """Uncompleted timeouts of the status expired at or before ``now``, by id."""
        with self._lock:
            return [
                t
                for t in self._timeouts.values()
                if t.workflow_name == workflow_name and t.status == status and not t.completed and t.expire_at <= now
            ]
