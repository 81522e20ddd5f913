"""`MemoryRecordStore`: records, their outbox and every stored version, in memory."""

from __future__ import annotations

import builtins
import dataclasses
import threading
from collections.abc import Iterable, Sequence

from actorflow.engine.failures import ErrorCounts
from actorflow.errors import RecordNotFound, VersionConflict, WorkflowInProgress
from actorflow.event import OutboxEvent, make_outbox_event
from actorflow.protocols import Order, RecordFilter
from actorflow.record import Record
from actorflow.runstate import RunState

__all__ = ["MemoryRecordStore"]


class MemoryRecordStore:
    """A thread-safe record store in this process's memory.

    Each `store` checks the version and the one-unfinished-run-per-foreign-id rule and
    writes the outbox event under one lock, so it is atomic like a transaction. It keeps
    every stored version (`snapshots`; a Data Deleted version replaces the object of every
    earlier one), wakes the outbox relay when it writes, and counts
    step errors per run (`ErrorCounter`), forgetting a run's counts when the engine asks.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._records: dict[str, Record] = {}
        self._created: list[str] = []
        self._latest: dict[str, dict[str, str]] = {}  # workflow -> foreign id -> its latest run
        self._unfinished: dict[tuple[str, str], str] = {}
        self._snapshots: dict[str, list[Record]] = {}
        self._outbox: dict[str, dict[str, OutboxEvent]] = {}
        self._errors = ErrorCounts()

    # -- writes ---------------------------------------------------------------------------

    def store(self, record: Record) -> None:
        """Create or update ``record`` with its outbox event, atomically."""
        with self._cond:
            self._store(record)
            self._cond.notify_all()

    def store_many(self, records: Sequence[Record], *, forget_errors: bool = False) -> builtins.list[Exception | None]:
        """Store each record; a failed one (returned) never undoes the others.

        ``forget_errors`` forgets the error counts of each run stored, under the same lock.
        """
        results: list[Exception | None] = []
        with self._cond:
            for record in records:
                try:
                    self._store(record)
                except (VersionConflict, WorkflowInProgress) as exc:
                    results.append(exc)
                else:
                    results.append(None)
                    if forget_errors:
                        self._errors.forget_run(record.run_id)
            self._cond.notify_all()
        return results

    def _store(self, record: Record) -> None:
        run_id = record.run_id
        key = (record.workflow_name, record.foreign_id)
        existing = self._records.get(run_id)
        version = record.meta.version
        if existing is None:
            if version != 1:
                msg = f"run {run_id} does not exist; a new record must be at version 1, not {version}"
                raise VersionConflict(msg, run_id=run_id)
            other = self._unfinished.get(key)
            if other is not None:
                raise WorkflowInProgress(run_id=other, foreign_id=record.foreign_id)
            self._created.append(run_id)
            self._latest.setdefault(record.workflow_name, {})[record.foreign_id] = run_id
        elif existing.meta.version != version - 1:
            msg = f"run {run_id} is at version {existing.meta.version}; cannot store version {version} over it"
            raise VersionConflict(msg, run_id=run_id)
        self._records[run_id] = record
        if record.run_state.finished:
            if self._unfinished.get(key) == run_id:
                del self._unfinished[key]
        else:
            self._unfinished[key] = run_id
        snapshots = self._snapshots.setdefault(run_id, [])
        if record.run_state is RunState.DATA_DELETED:
            # The deletion reaches every kept version: nothing of the old object survives.
            snapshots[:] = [dataclasses.replace(s, object=record.object) for s in snapshots]
        snapshots.append(record)
        event = make_outbox_event(record)
        self._outbox.setdefault(record.workflow_name, {})[event.id] = event

    # -- error counts -----------------------------------------------------------------------

    def add_error(self, process: str, run_id: str) -> int:
        """Count one more step error of (process, run); the count so far."""
        return self._errors.add_error(process, run_id)

    def clear_errors(self, process: str, run_id: str) -> None:
        """Forget the step errors of (process, run)."""
        self._errors.clear_errors(process, run_id)

    # -- reads --------------------------------------------------------------------------

    def lookup(self, run_id: str) -> Record:
        """The record of ``run_id``."""
        found = self._records.get(run_id)
        if found is None:
            raise RecordNotFound(run_id=run_id)
        return found

    def latest(self, workflow_name: str, foreign_id: str) -> Record:
        """The most recently created run of ``foreign_id``."""
        with self._cond:
            run_id = self._latest.get(workflow_name, {}).get(foreign_id)
            if run_id is None:
                raise RecordNotFound(workflow_name=workflow_name, foreign_id=foreign_id)
            return self._records[run_id]

    def list(
        self,
        workflow_name: str,
        *,
        offset: int = 0,
        limit: int = 25,
        order: Order = "asc",
        filter: RecordFilter | None = None,  # noqa: A002 - the contract's name
    ) -> builtins.list[Record]:
        """Records in creation order (``desc``: newest first), filtered, then paged."""
        with self._cond:
            ids = self._created if order == "asc" else list(reversed(self._created))
            records = self._records
            matching = [
                records[i]
                for i in ids
                if (not workflow_name or records[i].workflow_name == workflow_name)
                and (filter is None or filter.matches(records[i]))
            ]
        return matching[offset : offset + limit]

    def snapshots(self, run_id: str) -> builtins.list[Record]:
        """Every stored version of the run, oldest first."""
        with self._cond:
            return list(self._snapshots.get(run_id, ()))

    # -- outbox -------------------------------------------------------------------------

    def list_outbox_events(self, workflow_name: str, limit: int) -> builtins.list[OutboxEvent]:
        """Up to ``limit`` outbox events of the workflow, oldest first."""
        with self._cond:
            rows = self._outbox.get(workflow_name)
            if not rows:
                return []
            out: list[OutboxEvent] = []
            for event in rows.values():
                out.append(event)
                if len(out) >= limit:
                    break
            return out

    def delete_outbox_event(self, id: str) -> None:  # noqa: A002 - the contract's name
        """Remove one outbox event."""
        self.delete_outbox_events((id,))

    def delete_outbox_events(self, ids: Iterable[str]) -> None:
        """Remove outbox events (unknown ids are ignored)."""
        with self._cond:
            for outbox_id in ids:
                for rows in self._outbox.values():
                    if rows.pop(outbox_id, None) is not None:
                        break

    def wait_for_outbox(self, workflow_name: str, timeout: float) -> None:
        """Block until the workflow has outbox events, or ``timeout`` seconds pass."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._outbox.get(workflow_name)), timeout)
