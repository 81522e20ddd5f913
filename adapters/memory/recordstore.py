"""`MemoryRecordStore`: records, their outbox and every stored version, in memory."""

from __future__ import annotations

import builtins
import dataclasses
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from actorflow.capabilities import RecordPage, RunCount
from actorflow.engine.failures import ErrorCounts
from actorflow.errors import InvalidCursor, InvalidForeignId, RecordNotFound, VersionConflict, WorkflowInProgress
from actorflow.event import OutboxEvent, event_headers, event_topic, make_outbox_event
from actorflow.protocols import EventStreamer, Order, RecordFilter
from actorflow.record import Record, foreign_id_refusal
from actorflow.runstate import RunState

from .streamer import MemoryEventStreamer

__all__ = ["MemoryRecordStore"]


class MemoryRecordStore:
    """A thread-safe record store in this process's memory.

    Each `store` checks the version and the one-unfinished-run-per-foreign-id rule and
    writes the outbox event under one lock, so it is atomic like a transaction. A workflow
    whose events are in a `MemoryEventStreamer` has them appended there instead, under the
    same lock (`publish_directly`): no outbox row, no relay, events in commit order. It keeps
    every stored version (`snapshots`; a Data Deleted version replaces the object of every
    earlier one), wakes the outbox relay when it writes, and counts
    step errors per run (`ErrorCounter`), forgetting a run's counts when the engine asks.

    Args:
        outbox: keep every event in the outbox for the relay, even beside a memory
            streamer (to exercise the relay's path in tests or demos).
    """

    def __init__(self, *, outbox: bool = False) -> None:
        self._always_outbox = outbox
        self._cond = threading.Condition(threading.Lock())
        self._records: dict[str, Record] = {}
        self._created: list[str] = []
        self._latest: dict[str, dict[str, str]] = {}  # workflow -> foreign id -> its latest run
        self._unfinished: dict[tuple[str, str], str] = {}
        self._snapshots: dict[str, list[Record]] = {}
        self._outbox: dict[str, dict[str, OutboxEvent]] = {}
        self._outbox_interrupts: dict[str, int] = {}  # per workflow: `interrupt_outbox_wait` calls
        self._errors = ErrorCounts()
        self._direct: dict[str, MemoryEventStreamer] = {}  # workflow -> where its events go at once

    def publish_directly(self, workflow_name: str, event_streamer: EventStreamer) -> bool:
        """Append ``workflow_name``'s events to ``event_streamer`` as they are stored, if it is in memory too.

        The relay's hop (an outbox row, a wake-up, a send) bought nothing in one process:
        the event is appended under the store's lock, so it is there exactly when its record is.
        """
        if self._always_outbox or not isinstance(event_streamer, MemoryEventStreamer):
            return False
        with self._cond:
            self._direct[workflow_name] = event_streamer
        return True

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
                except (InvalidForeignId, VersionConflict, WorkflowInProgress) as exc:
                    results.append(exc)
                else:
                    results.append(None)
                    if forget_errors:
                        self._errors.forget_run(record.run_id)
            self._cond.notify_all()
        return results

    def _store(self, record: Record) -> None:
        refusal = foreign_id_refusal(record)  # the one rule, before anything is written
        if refusal is not None:
            raise refusal
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
        direct = self._direct.get(record.workflow_name)
        if direct is not None:
            direct.publish(event_topic(record), run_id, record.status, event_headers(record))
            return
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

    def page(
        self,
        workflow_name: str,
        *,
        limit: int = 50,
        order: Order = "desc",
        filter: RecordFilter | None = None,  # noqa: A002 - as in list
        after: str | None = None,
    ) -> RecordPage:
        """Up to ``limit`` records in creation order after the cursor ``after`` (a position in it)."""
        if order not in ("asc", "desc"):
            msg = f"order must be 'asc' or 'desc', got {order!r}"
            raise ValueError(msg)
        with self._cond:
            created, records = self._created, self._records
            position = self._position(after, len(created))
            if order == "asc":
                positions = range(0 if position is None else position + 1, len(created))
            else:
                positions = range(len(created) - 1 if position is None else position - 1, -1, -1)
            found: list[Record] = []
            last = -1
            for i in positions:
                record = records[created[i]]
                if (workflow_name and record.workflow_name != workflow_name) or (
                    filter is not None and not filter.matches(record)
                ):
                    continue
                if len(found) >= limit:
                    return RecordPage(found, f"m{last}" if found else None)
                found.append(record)
                last = i
        return RecordPage(found, None)

    @staticmethod
    def _position(cursor: str | None, size: int) -> int | None:
        if cursor is None:
            return None
        digits = cursor[1:] if isinstance(cursor, str) and cursor.startswith("m") else ""
        if not digits.isdigit() or not 0 <= int(digits) < size:
            msg = f"not a page cursor of this store: {cursor!r:.80}"
            raise InvalidCursor(msg)
        return int(digits)

    def count_runs(self, workflow_name: str, *, filter: RecordFilter | None = None) -> builtins.list[RunCount]:  # noqa: A002
        """The number of matching runs per (workflow, status, status name, run state)."""
        counts: dict[tuple[str, int, RunState], list[Any]] = {}
        with self._cond:
            for record in self._records.values():
                if (workflow_name and record.workflow_name != workflow_name) or (
                    filter is not None and not filter.matches(record)
                ):
                    continue
                key = (record.workflow_name, record.status, record.run_state)
                entry = counts.setdefault(key, [record.meta.status_description, 0])
                entry[0] = max(entry[0], record.meta.status_description)
                entry[1] += 1
        return [
            RunCount(workflow, status, name, state, count)
            for (workflow, status, state), (name, count) in sorted(counts.items())
        ]

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
        """Block until the workflow has outbox events, ``timeout`` seconds pass, or `interrupt_outbox_wait`."""
        with self._cond:
            seen = self._outbox_interrupts.get(workflow_name, 0)
            self._cond.wait_for(
                lambda: bool(self._outbox.get(workflow_name)) or self._outbox_interrupts.get(workflow_name, 0) != seen,
                timeout,
            )

    def interrupt_outbox_wait(self, workflow_name: str) -> None:
        """Make the workflow's waits for its outbox return now."""
        with self._cond:
            self._outbox_interrupts[workflow_name] = self._outbox_interrupts.get(workflow_name, 0) + 1
            self._cond.notify_all()
