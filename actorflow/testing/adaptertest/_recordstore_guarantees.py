"""What actorflow's record stores guarantee beyond the original (DESIGN.md, "weak spots")."""

# ruff: noqa: S101, PLR2004 - a pytest suite asserts

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from actorflow.capabilities import BatchStore, ErrorCounter, InterruptibleOutboxWaiter, OutboxWaiter, Snapshots
from actorflow.errors import InvalidForeignId, RecordNotFound, VersionConflict, WorkflowInProgress
from actorflow.protocols import RecordStore
from actorflow.record import MAX_FOREIGN_ID, Record, check_foreign_id
from actorflow.runstate import RunState
from actorflow.testing.adaptertest._records import (
    FOREIGN_ID,
    SECOND_WORKFLOW,
    STATUS_END,
    STATUS_MIDDLE,
    WORKFLOW,
    RecordStoreFactory,
    assert_same_record,
    dummy_record,
    next_version,
)

__all__ = ["GuaranteeCases"]


def _race(workers: list[Callable[[], None]]) -> list[Exception | None]:
    """Run every worker on its own thread, released together; each one's outcome."""
    barrier = threading.Barrier(len(workers))
    outcomes: list[Exception | None] = [None] * len(workers)

    def run(index: int, work: Callable[[], None]) -> None:
        try:
            barrier.wait(timeout=5)
            work()
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i, w), name=f"adaptertest-race-{i}") for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a store() call did not return within 30 s"
    return outcomes


def _outbox_count(store: RecordStore, workflow_name: str = WORKFLOW) -> int:
    return len(store.list_outbox_events(workflow_name, 10_000))


class GuaranteeCases:
    """Optimistic concurrency, one unfinished run per foreign id, ordering, capabilities."""

    # -- optimistic concurrency ---------------------------------------------------------

    def test_store_with_a_stale_version_raises_version_conflict(self, make_record_store: RecordStoreFactory) -> None:
        """A write based on an old version raises VersionConflict and changes nothing."""
        store = make_record_store()
        v1 = dummy_record()
        store.store(v1)
        v2 = next_version(v1, status=STATUS_MIDDLE, run_state=RunState.RUNNING)
        store.store(v2)

        stale = next_version(v1, status=STATUS_END, run_state=RunState.COMPLETED)  # also "version 2"
        with pytest.raises(VersionConflict):
            store.store(stale)
        ahead = next_version(next_version(v2), status=STATUS_END)  # version 4 over version 2
        with pytest.raises(VersionConflict):
            store.store(ahead)
        with pytest.raises(VersionConflict):
            store.store(v1)  # version 1 again: the run exists already

        assert_same_record(store.lookup(v1.run_id), v2)
        assert_same_record(store.latest(WORKFLOW, FOREIGN_ID), v2)
        assert _outbox_count(store) == 2, "a refused write must not write an outbox event"

    def test_updating_an_unknown_run_raises_version_conflict(self, make_record_store: RecordStoreFactory) -> None:
        """Only version 1 creates a run: version 2 of a run never stored is a conflict."""
        store = make_record_store()
        orphan = next_version(dummy_record())
        with pytest.raises(VersionConflict):
            store.store(orphan)
        with pytest.raises(RecordNotFound):
            store.lookup(orphan.run_id)
        assert _outbox_count(store) == 0

    def test_concurrent_writers_of_the_same_version_one_wins(self, make_record_store: RecordStoreFactory) -> None:
        """Threads racing to store the same next version: exactly one succeeds."""
        store = make_record_store()
        v1 = dummy_record()
        store.store(v1)
        candidates = [next_version(v1, status=STATUS_MIDDLE, obj=f'{{"writer": {i}}}'.encode()) for i in range(8)]

        outcomes = _race([functools.partial(store.store, c) for c in candidates])

        winners = [c for c, o in zip(candidates, outcomes, strict=True) if o is None]
        assert len(winners) == 1, f"{len(winners)} writers stored version 2: {outcomes}"
        assert all(isinstance(o, VersionConflict) for o in outcomes if o is not None), outcomes
        assert_same_record(store.lookup(v1.run_id), winners[0])
        assert _outbox_count(store) == 2

    # -- foreign ids: every store keeps the whole rule ------------------------------------

    def test_foreign_ids_at_the_rules_edges_are_kept_and_found_exactly(
        self, make_record_store: RecordStoreFactory
    ) -> None:
        """Every id `check_foreign_id` accepts round-trips and is found by `latest` exactly.

        No truncation, no case folding, no pattern matching: the longest, multi-byte, emoji, punctuation.
        """
        store = make_record_store()
        edges = [
            "x" * MAX_FOREIGN_ID,
            "€" * MAX_FOREIGN_ID,
            "👨‍👩‍👧 family",
            "a,b;c 'd' \"e\" %_\\",
            "%",
            "  spaced  ",
            "Case",
            "case",
        ]
        stored = {}
        for foreign_id in edges:
            record = dummy_record(foreign_id=check_foreign_id(foreign_id))
            store.store(record)
            stored[foreign_id] = record
        for foreign_id, record in stored.items():
            assert_same_record(store.latest(WORKFLOW, foreign_id), record)
        with pytest.raises(RecordNotFound):
            store.latest(WORKFLOW, "x" * (MAX_FOREIGN_ID - 1))  # a prefix is another id

    @pytest.mark.parametrize(
        "foreign_id",
        [None, 42, "", "a\x00b", "line\nbreak", "\ud800", "x" * (MAX_FOREIGN_ID + 1), "x" * (1 << 20)],
        ids=["none", "int", "empty", "nul", "newline", "lone-surrogate", "too-long", "one-megabyte"],
    )
    def test_a_new_run_whose_foreign_id_breaks_the_rule_is_refused_before_any_write(
        self, make_record_store: RecordStoreFactory, foreign_id: object
    ) -> None:
        """The rule the engine checks (`check_foreign_id`) holds for a store called directly.

        `InvalidForeignId` (a `ValueError` and a `TypeError`) from `store`, and in its place
        from `store_many` without undoing the others; nothing of the run is stored, no
        event is written. No backend maps it to another error (`WorkflowInProgress` for
        ``None``, a driver's `UnicodeEncodeError` for a lone surrogate) or keeps what
        another would refuse (NUL, a megabyte).
        """
        store = make_record_store()
        bad = dataclasses.replace(dummy_record(), foreign_id=foreign_id)  # type: ignore[arg-type]
        with pytest.raises(InvalidForeignId):
            store.store(bad)
        kept = []
        if isinstance(store, BatchStore):
            kept = [dummy_record(foreign_id="before"), dummy_record(foreign_id="after")]
            results = store.store_many([kept[0], bad, kept[1]])
            assert results[0] is None, results
            assert isinstance(results[1], InvalidForeignId), results
            assert results[2] is None, results
        with pytest.raises(RecordNotFound):
            store.lookup(bad.run_id)
        assert sorted(r.run_id for r in store.list(WORKFLOW, limit=100)) == sorted(r.run_id for r in kept)
        assert _outbox_count(store) == len(kept), "a refused run must not write an event"
        if isinstance(store, Snapshots):
            assert store.snapshots(bad.run_id) == []

    # -- one unfinished run per foreign id ------------------------------------------------

    def test_second_unfinished_run_raises_workflow_in_progress(self, make_record_store: RecordStoreFactory) -> None:
        """A new run while the foreign id has an unfinished one is refused and stores nothing."""
        store = make_record_store()
        first = dummy_record()
        store.store(first)
        store.store(paused := next_version(first, run_state=RunState.PAUSED))

        for state in (RunState.INITIATED, RunState.COMPLETED):
            second = dummy_record(run_state=state)
            with pytest.raises(WorkflowInProgress):
                store.store(second)
            with pytest.raises(RecordNotFound):
                store.lookup(second.run_id)

        assert_same_record(store.latest(WORKFLOW, FOREIGN_ID), paused)
        assert _outbox_count(store) == 2
        store.store(dummy_record(SECOND_WORKFLOW))  # another workflow's run of that foreign id is its own

    @pytest.mark.parametrize("finished", [RunState.COMPLETED, RunState.CANCELLED])
    def test_new_run_after_the_first_finished_is_accepted(
        self, make_record_store: RecordStoreFactory, finished: RunState
    ) -> None:
        """Once the foreign id's run is finished (Completed/Cancelled) a new run is stored."""
        store = make_record_store()
        first = dummy_record()
        store.store(first)
        store.store(next_version(first, status=STATUS_END, run_state=finished))

        second = dummy_record()
        store.store(second)
        assert_same_record(store.lookup(second.run_id), second)
        assert_same_record(store.latest(WORKFLOW, FOREIGN_ID), second)

    def test_concurrent_new_runs_of_one_foreign_id_one_wins(self, make_record_store: RecordStoreFactory) -> None:
        """Threads racing to start a run of the same foreign id: exactly one is stored."""
        store = make_record_store()
        candidates = [dummy_record() for _ in range(8)]

        outcomes = _race([functools.partial(store.store, c) for c in candidates])

        winners = [c for c, o in zip(candidates, outcomes, strict=True) if o is None]
        assert len(winners) == 1, f"{len(winners)} unfinished runs of one foreign id were stored: {outcomes}"
        assert all(isinstance(o, WorkflowInProgress) for o in outcomes if o is not None), outcomes
        assert_same_record(store.latest(WORKFLOW, FOREIGN_ID), winners[0])
        assert _outbox_count(store) == 1

    def test_latest_is_the_most_recently_created_run(self, make_record_store: RecordStoreFactory) -> None:
        """latest() is the newest run by creation, even when an older run was written since."""
        store = make_record_store()
        start = datetime.now(UTC)
        older = dummy_record(created_at=start)
        store.store(older)
        older = next_version(older, status=STATUS_END, run_state=RunState.COMPLETED)
        store.store(older)
        newer = dummy_record(created_at=start + timedelta(seconds=1))
        store.store(newer)

        store.store(next_version(older, run_state=RunState.REQUESTED_DATA_DELETED))  # the old run written last
        assert_same_record(store.latest(WORKFLOW, FOREIGN_ID), newer)

    # -- outbox ---------------------------------------------------------------------------

    def test_outbox_events_are_listed_oldest_first(self, make_record_store: RecordStoreFactory) -> None:
        """Outbox events come out in write order, so one run's events are relayed in order."""
        store = make_record_store()
        a1, b1 = dummy_record(foreign_id="a"), dummy_record(foreign_id="b")
        a2 = next_version(a1, status=STATUS_MIDDLE, run_state=RunState.RUNNING)
        a3 = next_version(a2, status=STATUS_END, run_state=RunState.COMPLETED)
        b2 = next_version(b1, status=STATUS_MIDDLE, run_state=RunState.RUNNING)
        other = dummy_record(SECOND_WORKFLOW)
        written = [a1, b1, a2, other, a3, b2]
        for record in written:
            store.store(record)
        mine = [r for r in written if r is not other]

        events = store.list_outbox_events(WORKFLOW, 100)
        assert [(e.run_id, e.headers["record_version"]) for e in events] == [
            (r.run_id, str(r.meta.version)) for r in mine
        ]
        assert len({e.id for e in events}) == len(events), "outbox ids are unique"
        assert events[4].headers["topic"] == "my_workflow-2"
        assert events[3].headers["topic"] == "my_workflow-run-state-change", "Completed goes to run-state-change"
        assert [e.id for e in store.list_outbox_events(WORKFLOW, 2)] == [e.id for e in events[:2]]

        store.delete_outbox_event(events[0].id)
        store.delete_outbox_event("outbox-id-unknown")  # unknown ids are ignored
        assert [e.id for e in store.list_outbox_events(WORKFLOW, 100)] == [e.id for e in events[1:]]
        assert len(store.list_outbox_events(SECOND_WORKFLOW, 100)) == 1

    # -- optional capabilities --------------------------------------------------------------

    def test_store_many_reports_each_failure_without_undoing_others(
        self, make_record_store: RecordStoreFactory
    ) -> None:
        """BatchStore.store_many returns per-record errors; the good records are stored."""
        store = make_record_store()
        if not isinstance(store, BatchStore):
            pytest.skip("the store has no store_many (BatchStore is optional)")
        existing = dummy_record(foreign_id="existing")
        store.store(existing)
        ok1 = dummy_record(foreign_id="ok-1")
        busy = dummy_record(foreign_id="existing")  # a second unfinished run of that foreign id
        stale = next_version(next_version(existing))  # version 3 over version 1
        ok2 = next_version(existing, status=STATUS_MIDDLE, run_state=RunState.RUNNING)
        ok3 = dummy_record(foreign_id="ok-3")

        results = store.store_many([ok1, busy, stale, ok2, ok3])

        assert len(results) == 5
        assert results[0] is None
        assert isinstance(results[1], WorkflowInProgress)
        assert isinstance(results[2], VersionConflict)
        assert results[3] is None
        assert results[4] is None
        for record in (ok1, ok2, ok3):
            assert_same_record(store.lookup(record.run_id), record)
        with pytest.raises(RecordNotFound):
            store.lookup(busy.run_id)
        assert _outbox_count(store) == 4

    def test_store_many_applies_records_in_order(self, make_record_store: RecordStoreFactory) -> None:
        """store_many stores each record as store() would, one after the other."""
        store = make_record_store()
        if not isinstance(store, BatchStore):
            pytest.skip("the store has no store_many (BatchStore is optional)")
        v1 = dummy_record()
        v2 = next_version(v1, status=STATUS_MIDDLE, run_state=RunState.RUNNING)
        assert store.store_many([v1, v2]) == [None, None]
        assert_same_record(store.lookup(v1.run_id), v2)
        assert store.store_many([]) == []

    def test_delete_outbox_events_removes_many(self, make_record_store: RecordStoreFactory) -> None:
        """BatchStore.delete_outbox_events removes the given events, ignoring unknown ids."""
        store = make_record_store()
        if not isinstance(store, BatchStore):
            pytest.skip("the store has no delete_outbox_events (BatchStore is optional)")
        for i in range(5):
            store.store(dummy_record(foreign_id=f"r{i}"))
        events = store.list_outbox_events(WORKFLOW, 100)
        store.delete_outbox_events([events[0].id, events[3].id, "outbox-id-unknown"])
        assert [e.id for e in store.list_outbox_events(WORKFLOW, 100)] == [events[i].id for i in (1, 2, 4)]

    def test_snapshots_keep_every_version(self, make_record_store: RecordStoreFactory) -> None:
        """Snapshots.snapshots returns every stored version oldest first; refused writes add none."""
        store = make_record_store()
        if not isinstance(store, Snapshots):
            pytest.skip("the store keeps no snapshots (Snapshots is optional)")
        v1 = dummy_record()
        v2 = next_version(v1, status=STATUS_MIDDLE, run_state=RunState.RUNNING)
        v3 = next_version(v2, status=STATUS_END, run_state=RunState.COMPLETED)
        for record in (v1, v2, v3):
            store.store(record)
        with pytest.raises(VersionConflict):
            store.store(next_version(v1))

        snapshots = store.snapshots(v1.run_id)
        assert len(snapshots) == 3
        for got, want in zip(snapshots, (v1, v2, v3), strict=True):
            assert_same_record(got, want)
        assert store.snapshots("no-such-run") == []

    def test_a_data_deleted_version_leaves_the_deleted_object_nowhere(
        self, make_record_store: RecordStoreFactory
    ) -> None:
        """A Data Deleted version replaces the object in every version the store keeps.

        Each earlier snapshot gets the replacement (status, run state, version, times and
        ids stay), in the write's own transaction, through `store` and `store_many`
        alike; the outbox rows never carry the object; a refused Data Deleted write and
        other runs with the same object are left as they were.
        """
        store = make_record_store()
        secret = b'{"card":"SECRET-4242"}'
        replacement = b'{"result":"deleted"}'

        def finished(foreign_id: str) -> list[Record]:
            v1 = dataclasses.replace(dummy_record(foreign_id=foreign_id), object=secret)
            v2 = next_version(v1, status=STATUS_MIDDLE, run_state=RunState.RUNNING, obj=secret + b" ")
            v3 = next_version(v2, status=STATUS_END, run_state=RunState.COMPLETED)
            return [v1, v2, v3, next_version(v3, run_state=RunState.REQUESTED_DATA_DELETED, reason="gdpr")]

        def scrubbed(versions: list[Record]) -> list[Record]:
            deleted = next_version(versions[-1], run_state=RunState.DATA_DELETED, obj=replacement)
            return [*(dataclasses.replace(v, object=replacement) for v in versions), deleted]

        single, other = finished("single"), finished("other")
        for record in (*single, *other):
            store.store(record)
        # A refused deletion (version 6 over version 4) replaces nothing.
        with pytest.raises(VersionConflict):
            store.store(next_version(scrubbed(other)[-1], obj=replacement))
        store.store(scrubbed(single)[-1])
        deleted = {single[0].run_id: scrubbed(single)}
        if isinstance(store, BatchStore):  # the deletion in a batch, next to other writes
            batched = finished("batched")
            store.store_many(batched[:2])
            rest = [*batched[2:], scrubbed(batched)[-1]]
            assert store.store_many([*rest, next_version(other[-1], reason="still here")]) == [None] * 4
            other = [*other, next_version(other[-1], reason="still here")]
            deleted[batched[0].run_id] = scrubbed(batched)

        for run_id, versions in deleted.items():
            assert_same_record(store.lookup(run_id), versions[-1])
            if isinstance(store, Snapshots):
                got = store.snapshots(run_id)
                assert len(got) == len(versions), got
                for stored, want in zip(got, versions, strict=True):
                    assert_same_record(stored, want)
        assert_same_record(store.lookup(other[0].run_id), other[-1])
        if isinstance(store, Snapshots):
            assert [r.object for r in store.snapshots(other[0].run_id)] == [r.object for r in other]
        listed = {r.run_id: r.object for r in store.list(WORKFLOW, limit=100)}
        assert [listed[run_id] for run_id in deleted] == [replacement] * len(deleted)
        outbox = store.list_outbox_events(WORKFLOW, 10_000)
        assert outbox, "the store keeps outbox rows: they must not carry the object"
        leaked = [e for e in outbox if b"SECRET-4242" in repr(e).encode()]
        assert not leaked, f"outbox rows carry the deleted object: {leaked}"

    def test_a_write_asked_to_forget_errors_forgets_the_runs_error_counts(
        self, make_record_store: RecordStoreFactory
    ) -> None:
        """ErrorCounter with BatchStore: ``store_many(forget_errors=True)`` makes every count of the run stale."""
        store = make_record_store()
        if not isinstance(store, ErrorCounter) or not isinstance(store, BatchStore):
            pytest.skip("the store has no error counts or no store_many (both optional)")
        v1, other = dummy_record(), dummy_record(foreign_id="other")
        store.store(v1)
        store.store(other)
        assert [store.add_error("a@v1", v1.run_id) for _ in range(2)] == [1, 2]
        assert store.add_error("b@v1", v1.run_id) == 1
        assert store.add_error("a@v1", other.run_id) == 1

        refused = store.store_many([next_version(next_version(v1))], forget_errors=True)
        assert isinstance(refused[0], VersionConflict)  # a refused version forgets nothing
        assert store.add_error("a@v1", v1.run_id) == 3

        v2 = next_version(v1)
        assert store.store_many([v2], forget_errors=True) == [None]
        assert store.add_error("a@v1", v1.run_id) == 1
        assert store.add_error("b@v1", v1.run_id) == 1
        assert store.add_error("a@v1", other.run_id) == 2  # other runs keep theirs
        store.clear_errors("a@v1", v1.run_id)
        assert store.add_error("a@v1", v1.run_id) == 1

        # Unasked, a store keeps the counts: what goes stale is the engine's decision.
        store.store(next_version(v2))
        assert store.add_error("a@v1", v1.run_id) == 2

    def test_a_batch_forgets_the_error_counts_of_each_run_it_moves(self, make_record_store: RecordStoreFactory) -> None:
        """ErrorCounter with BatchStore: ``store_many(forget_errors=True)`` clears the counts of each run it stores."""
        store = make_record_store()
        if not isinstance(store, ErrorCounter) or not isinstance(store, BatchStore):
            pytest.skip("the store has no error counts or no store_many (both optional)")
        runs = [dummy_record(foreign_id=f"f{i}") for i in range(3)]
        assert store.store_many(runs) == [None, None, None]
        for run in runs:
            store.add_error("p@v1", run.run_id)
        assert store.store_many([next_version(runs[0]), next_version(runs[2])], forget_errors=True) == [None, None]
        assert [store.add_error("p@v1", run.run_id) for run in runs] == [1, 2, 1]

    def test_wait_for_outbox_wakes_when_an_event_is_written(self, make_record_store: RecordStoreFactory) -> None:
        """OutboxWaiter.wait_for_outbox returns as soon as another thread stores a record."""
        store = make_record_store()
        if not isinstance(store, OutboxWaiter):
            pytest.skip("the store cannot wake the outbox relay (OutboxWaiter is optional)")
        writer = threading.Timer(0.1, store.store, args=(dummy_record(),))
        started = time.monotonic()
        writer.start()
        try:
            store.wait_for_outbox(WORKFLOW, timeout=5.0)
            elapsed = time.monotonic() - started
        finally:
            writer.join(timeout=5)
        assert elapsed < 1.0, f"wait_for_outbox took {elapsed:.2f}s after a write: it must be woken, not poll"
        assert _outbox_count(store) == 1

    def test_wait_for_outbox_returns_when_interrupted(self, make_record_store: RecordStoreFactory) -> None:
        """InterruptibleOutboxWaiter.interrupt_outbox_wait makes a wait in progress return long before its timeout."""
        store = make_record_store()
        if not isinstance(store, InterruptibleOutboxWaiter):
            pytest.skip("the store's outbox wait cannot be interrupted (InterruptibleOutboxWaiter is optional)")
        returned = threading.Event()

        def wait() -> None:
            store.wait_for_outbox(WORKFLOW, timeout=60.0)
            returned.set()

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        # An interrupt before the wait began is not seen by it: interrupt until it returns.
        deadline = time.monotonic() + 30
        while not returned.wait(0.05) and time.monotonic() < deadline:
            store.interrupt_outbox_wait(WORKFLOW)
        assert returned.is_set(), "wait_for_outbox did not return when interrupted"
        waiter.join(5)
        assert _outbox_count(store) == 0  # a spurious wake-up: nothing was written

    def test_wait_for_outbox_returns_after_the_timeout(self, make_record_store: RecordStoreFactory) -> None:
        """With nothing written, wait_for_outbox returns once its timeout has passed."""
        store = make_record_store()
        if not isinstance(store, OutboxWaiter):
            pytest.skip("the store cannot wake the outbox relay (OutboxWaiter is optional)")
        started = time.monotonic()
        store.wait_for_outbox(WORKFLOW, timeout=0.2)
        assert time.monotonic() - started < 2.0
