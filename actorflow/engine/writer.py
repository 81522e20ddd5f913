"""The engine's one write path: every record the engine stores goes through `Writer.commit`.

A consumer's batch (group commit) and an immediate write (a trigger, a callback, a
pause) are two uses of the same call; immediate writes made at the same time by several
threads share one commit too (`Writer.store`), so the version rule (each write adds exactly 1,
checked atomically by the store), the forgetting of stale error counts, the
``workflow_run_state_changes`` metric and the wake-up of waiters are applied once, the
same way for every writer. A role's writes carry its lease (`Fence`): a store that can
check it in the write's own transaction (`FencedStore`) refuses the whole write with
`StaleTerm` once the role has passed to another node.

A commit that fails with the store's error (not a refusal) may still have been applied:
the connection was lost after the server committed, before it answered. Its writes are
kept *in doubt*. When a record read later is exactly one of them, it was stored, and
what it is owed (the metric, the waiters) is applied then, once: a consumer reads the
records of the events it handles (`Writer.observed`), and each consumer's tick looks the
runs still in doubt up (`Writer.settle`), for a write whose event nobody reads again.
A read can also see such a write while its commit is still in flight (another consumer
reads the record as soon as the server commits, before the failure reaches this one): a
write seen stored that way is owed its due at once when its commit then fails.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from actorflow.capabilities import BatchLookup, BatchStore, CommitAcks, CursorMove, FencedStore
from actorflow.errors import RecordNotFound, StaleTerm, VersionConflict, WorkflowInProgress
from actorflow.metrics import Metrics
from actorflow.protocols import Fence, RecordStore
from actorflow.record import Record

from .failures import ErrorCounts
from .handoff import Handoff
from .transitions import Write
from .watch import WatchRegistry

__all__ = ["IN_DOUBT_LIMIT", "Writer"]

logger = logging.getLogger("actorflow")

# Writes kept in doubt at most (the oldest are forgotten past it: an outage during a
# large backlog loses a few metric counts rather than growing without bound).
IN_DOUBT_LIMIT = 10_000
SETTLE_EVERY = 1.0  # seconds between lookups of the runs in doubt (while the store is away, each fails)

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
        handoff: where each stored record's event is handed to this engine's own
            consumers at once (see `Handoff`), if anywhere.
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
        handoff: Handoff | None = None,
    ) -> None:
        self._store = store
        self._handoff = handoff
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
        # Writes whose commit failed in a way that may have applied them, by run id.
        self._in_doubt: OrderedDict[str, Write] = OrderedDict()
        self._doubt_lock = threading.Lock()
        self._settle_at = 0.0
        # Writes being committed, by run id, and those of them a read has seen stored.
        self._in_flight: dict[str, Write] = {}
        self._seen_stored: set[str] = set()

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
        with self._doubt_lock:
            for write in writes:
                self._in_flight[write.record.run_id] = write
        try:
            results = self._send(writes, fence, acks)
        except StaleTerm:
            self._land(writes)
            raise  # checked before anything was written: nothing stored
        except Exception:
            self._doubt(writes)
            raise
        self._land(writes)
        self._settle(writes, results)
        return results

    def _land(self, writes: Sequence[Write]) -> list[Write]:
        """End the flight of ``writes``; those a read saw stored meanwhile."""
        seen: list[Write] = []
        with self._doubt_lock:
            for write in writes:
                run_id = write.record.run_id
                if self._in_flight.get(run_id) is write:
                    del self._in_flight[run_id]
                    if run_id in self._seen_stored:
                        self._seen_stored.discard(run_id)
                        seen.append(write)
        return seen

    def _send(self, writes: Sequence[Write], fence: Fence | None, acks: list[CursorMove]) -> list[Exception | None]:
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
        return results

    def _settle(self, writes: Sequence[Write], results: Sequence[Exception | None]) -> None:
        """What each stored write is owed; a run's write in doubt is settled by a later one stored."""
        if self._in_doubt:
            with self._doubt_lock:
                for write, error in zip(writes, results, strict=True):
                    if error is None:
                        self._in_doubt.pop(write.record.run_id, None)
        stored: list[Write] = []
        refused: list[Record] = []
        failure: Exception | None = None
        for write, error in zip(writes, results, strict=True):
            if error is None:
                stored.append(write)
            elif not isinstance(error, _REFUSALS):
                failure = error
                break
            else:
                refused.append(write.record)
        if refused and self._handoff is not None:
            self._handoff.forget(refused)
        self._count(stored)  # before any waiter is woken
        self._owed([write.record for write in stored])
        if failure is not None:
            raise failure

    def _count(self, writes: Sequence[Write]) -> None:
        """Count the run-state changes of stored writes: one increment (one lock round) per label set."""
        changes: dict[tuple[str, str, str], int] = {}
        for write in writes:
            record = write.record
            key = (record.workflow_name, str(write.previous), str(record.run_state))
            changes[key] = changes.get(key, 0) + 1
        if changes:
            counter = self._metrics().run_state_changes
            for labels, n in changes.items():
                counter.inc(*labels, amount=float(n))

    def _stored(self, write: Write) -> None:
        self._count((write,))
        self._owed([write.record])

    def _owed(self, records: Sequence[Record]) -> None:
        """What stored records are owed besides their count: stale error counts forgotten, waiters woken, handoff."""
        for record in records:
            if self._counts is not None:
                self._counts.forget_run(record.run_id)  # counted per visit: now stale
            self._watch.publish(record)
        if self._handoff is not None and records:
            self._handoff.publish(records)  # each consumer woken once for all of its own

    def _doubt(self, writes: Sequence[Write]) -> None:
        seen = self._land(writes)
        for write in seen:
            self._stored_after_all(write)  # a read saw it stored while its commit was in flight
        applied = {id(write) for write in seen}
        with self._doubt_lock:
            for write in writes:
                if id(write) in applied:
                    continue
                self._in_doubt.pop(write.record.run_id, None)
                self._in_doubt[write.record.run_id] = write
            dropped = len(self._in_doubt) - IN_DOUBT_LIMIT
            for _ in range(dropped):
                self._in_doubt.popitem(last=False)
        if dropped > 0:
            logger.warning("%d writes of unknown outcome forgotten: the run-state metric may undercount", dropped)

    def observed(self, record: Record) -> None:
        """``record`` was read from the store: settle a write of its run that was in doubt.

        If the write is exactly ``record``, its commit was applied after all: it is counted
        and its waiters woken now. A record at the write's version or later that differs
        means it was not (another write stands); an older one leaves it in doubt.
        """
        if not self._in_doubt and not self._in_flight:  # read without the lock: the common case costs little
            return
        with self._doubt_lock:
            flying = self._in_flight.get(record.run_id)
            if flying is not None and flying.record == record:
                self._seen_stored.add(record.run_id)  # applied: owed its due if the commit reports failure
            write = self._in_doubt.get(record.run_id)
            if write is None or record.meta.version < write.record.meta.version:
                return
            del self._in_doubt[record.run_id]
        if write.record == record:
            self._stored_after_all(write)

    def _stored_after_all(self, write: Write) -> None:
        record = write.record
        logger.info("run %s: version %d, whose commit failed, was stored after all", record.run_id, record.meta.version)
        self._stored(write)

    def settle(self) -> None:
        """Look up the runs with a write in doubt (at most every `SETTLE_EVERY` s) and settle each.

        A read that succeeds sees the commit's final outcome: a write found stored is owed
        what any stored write is; one not found stored was not applied and is dropped. A
        lookup that fails (the store still away) leaves them for the next call.
        """
        if not self._in_doubt:
            return
        now = time.monotonic()
        with self._doubt_lock:
            if now < self._settle_at:
                return
            self._settle_at = now + SETTLE_EVERY
            doubted = dict(self._in_doubt)
        try:
            found = self._look_up(list(doubted))
        except Exception as exc:  # noqa: BLE001 - the store is still away: the next call tries again
            logger.debug("writes in doubt not settled yet: %s", exc)
            return
        for run_id, write in doubted.items():
            with self._doubt_lock:
                if self._in_doubt.get(run_id) is not write:
                    continue  # settled meanwhile, or replaced by a later write in doubt
                del self._in_doubt[run_id]
            if found.get(run_id) == write.record:
                self._stored_after_all(write)

    def _look_up(self, run_ids: list[str]) -> dict[str, Record]:
        if isinstance(self._store, BatchLookup):
            return self._store.lookup_many(run_ids)
        found: dict[str, Record] = {}
        for run_id in run_ids:
            with contextlib.suppress(RecordNotFound):  # a first write that was not stored
                found[run_id] = self._store.lookup(run_id)
        return found

    @property
    def in_doubt(self) -> int:
        """Writes whose commit failed in a way that may have applied them, not yet settled."""
        return len(self._in_doubt)

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
