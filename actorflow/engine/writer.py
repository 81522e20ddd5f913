"""The engine's one write path: every record the engine stores goes through `Writer.commit`.

A consumer's batch (group commit) and an immediate write (a trigger, a callback, a
pause) are two uses of the same call; immediate writes made at the same time by several
threads share one commit too (`Writer.store`), so the version rule (each write adds exactly 1,
checked atomically by the store), the forgetting of stale error counts, the
``workflow_run_state_changes`` metric and the wake-up of waiters are applied once, the
same way for every writer. A role's writes carry its lease (`Fence`): a store that can
check it in the write's own transaction (`FencedStore`) refuses the whole write with
`StaleTerm` once the role has passed to another node.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from actorflow.capabilities import BatchStore, CommitAcks, CursorMove, FencedStore
from actorflow.errors import VersionConflict, WorkflowInProgress
from actorflow.metrics import Metrics
from actorflow.protocols import Fence, RecordStore

from .failures import ErrorCounts
from .transitions import Write
from .watch import WatchRegistry

__all__ = ["Writer"]

# Refusals that belong to one record: reported in its place, never undoing the others.
_REFUSALS = (VersionConflict, WorkflowInProgress)


class Writer:
    """Stores records for one engine (see the module docstring).

    Args:
        store: the record store.
        counts: the engine's in-memory error counts, when the store keeps none (their
            runs are forgotten here after each commit), else ``None``.
        forget_in_store: the store counts errors and can forget a run's counts in the
            same transaction as its next version (``store_many(forget_errors=True)``).
        watch: the waiters to wake with each stored record.
        metrics: the metrics to count run-state changes in (looked up at each commit:
            a supervisor binds its own registry when it starts).
        fenced: the store checks a write's `Fence` against the role scheduler's leases
            (a `FencedStore` on the scheduler's database); otherwise fences are not sent.
    """

    def __init__(
        self,
        store: RecordStore,
        *,
        counts: ErrorCounts | None,
        forget_in_store: bool,
        watch: WatchRegistry,
        metrics: Callable[[], Metrics],
        fenced: bool = False,
    ) -> None:
        self._store = store
        self._batch = store if isinstance(store, BatchStore) else None
        self._acks = store if isinstance(store, CommitAcks) else None
        self._fenced = store if fenced and isinstance(store, FencedStore) else None
        self._counts = counts
        self._forget_in_store = forget_in_store and self._batch is not None
        self._watch = watch
        self._metrics = metrics
        # Immediate writes waiting for the commit in progress to end, to share the next one.
        self._queue: list[_Queued] = []
        self._committing = False
        self._turn = threading.Condition()

    def fence_through(self, *, enabled: bool) -> None:
        """Send fences to the store from now on (``enabled``), or not (its role scheduler changed)."""
        self._fenced = self._store if enabled and isinstance(self._store, FencedStore) else None

    @property
    def fences(self) -> bool:
        """True when the store refuses a write made under a lease the role has moved on from."""
        return self._fenced is not None

    def commit(
        self, writes: Sequence[Write], *, fence: Fence | None = None, ack: CursorMove | None = None
    ) -> list[Exception | None]:
        """Store every write (in one transaction when the store can); one result per write.

        A `VersionConflict` or `WorkflowInProgress` is returned in its write's place and
        never undoes the others; any other error is raised (the store itself failed).
        ``fence`` is the lease of the role the writes are made for: a store that fences
        raises `StaleTerm` and stores none of them once it is not the role's current one.
        ``ack``: a cursor move the store makes in the same transaction (a `CommitAcks`
        store only, for its own streamer's receivers: ``Capabilities.commit_acks``).

        Commits made by several threads at the same time share one transaction (group
        commit): a thread that finds a commit in progress queues its writes, and the
        first to find none commits everything queued together. Alone, writes commit at
        once. Fenced writes commit alone: their lease is checked in their own transaction.
        """
        if not writes:
            return []
        if ack is not None and self._acks is None:
            msg = "a cursor move was given to a store that cannot make one (not CommitAcks)"
            raise TypeError(msg)
        if fence is not None and self._fenced is not None:
            return self._write(writes, fence, [ack] if ack is not None else [])
        return self._shared(_Queued(writes, ack))

    def _write(self, writes: Sequence[Write], fence: Fence | None, acks: list[CursorMove]) -> list[Exception | None]:
        """One transaction for ``writes`` (and the cursor moves), then what every stored write is owed."""
        records = [write.record for write in writes]
        results: list[Exception | None]
        if acks and self._acks is not None:
            results = self._acks.store_many(records, forget_errors=self._forget_in_store, fence=fence, acks=acks)
        elif fence is not None and self._fenced is not None:
            results = self._fenced.store_many(records, forget_errors=self._forget_in_store, fence=fence)
        elif self._batch is None:
            results = []
            for record in records:
                try:
                    self._store.store(record)
                except _REFUSALS as exc:
                    results.append(exc)
                else:
                    results.append(None)
        elif self._forget_in_store:
            results = self._batch.store_many(records, forget_errors=True)
        else:
            results = self._batch.store_many(records)
        metrics = self._metrics()
        for write, error in zip(writes, results, strict=True):
            if error is None:
                record = write.record
                metrics.run_state_changes.inc(record.workflow_name, str(write.previous), str(record.run_state))
                if self._counts is not None:
                    self._counts.forget_run(record.run_id)  # counted per visit: now stale
                self._watch.publish(record)
            elif not isinstance(error, _REFUSALS):
                raise error
        return results

    def _shared(self, mine: _Queued) -> list[Exception | None]:
        """Commit ``mine`` with whatever other threads queue meanwhile (see `commit`)."""
        turn = self._turn
        with turn:
            self._queue.append(mine)
            while mine.results is None and mine.error is None and self._committing:
                turn.wait()
            if mine.results is not None or mine.error is not None:
                return mine.take()
            self._committing = True
            batch, self._queue = self._queue, []
        try:
            flat = [write for queued in batch for write in queued.writes]
            acks = [queued.ack for queued in batch if queued.ack is not None]
            try:
                results: list[Exception | None] | None = self._write(flat, None, acks)
                error: Exception | None = None
            except Exception as exc:  # noqa: BLE001 - handed to every writer of the batch
                results, error = None, exc
            start = 0
            for queued in batch:
                end = start + len(queued.writes)
                queued.results, queued.error = (None, error) if results is None else (results[start:end], None)
                start = end
        finally:
            for queued in batch:
                if queued.results is None and queued.error is None:  # interrupted (a BaseException)
                    queued.error = RuntimeError("the shared commit was interrupted")
            with turn:
                self._committing = False
                turn.notify_all()
        return mine.take()

    @property
    def waiting(self) -> int:
        """Writes queued behind the shared commit in progress (see `commit`)."""
        with self._turn:
            return sum(len(queued.writes) for queued in self._queue)

    def store(self, write: Write) -> None:
        """Store one write now (sharing a commit with other threads'), raising a refusal as the store does."""
        error = self.commit((write,))[0]
        if error is not None:
            raise error


class _Queued:
    """Writes (and a cursor move) waiting for a shared commit, and what it came to."""

    __slots__ = ("ack", "error", "results", "writes")

    def __init__(self, writes: Sequence[Write], ack: CursorMove | None) -> None:
        self.writes = writes
        self.ack = ack
        self.results: list[Exception | None] | None = None
        self.error: Exception | None = None

    def take(self) -> list[Exception | None]:
        if self.error is not None:
            raise self.error
        assert self.results is not None  # noqa: S101 - set before any waiter returns
        return self.results
