"""Group commit: a step consumer stores the transitions of one batch of events together.

A step error stops the batch at its event: the transitions before it are committed (and
acknowledged), the failing event is retried after err_backoff, and the events behind it
wait for it, in order. A version conflict on one transition of a group commit is that
transition's alone: the others in the same commit are stored.

To put several runs in one batch, they are triggered before the workflow runs, and their
events published before it runs (by the store itself on stacks that write events in the
record's transaction, else by relaying the outbox here as the relay would) and readable,
so the step consumer's first receive returns them all. The record store's ``store_many`` is wrapped
to see what each group commit held.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

import actorflow as af
from actorflow.protocols import EventSender
from actorflow.topics import topic
from tests.model import Order, Status

PROCESS = "started-consumer-1-of-1"
CONFLICT = "record version conflict"
FAILS = 2  # C's step fails this many times, then succeeds


class _Log:
    """The foreign ids a step was called for, in call order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[str] = []

    def add(self, item: str) -> int:
        with self._lock:
            self._items.append(item)
            return self._items.count(item)

    def items(self) -> list[str]:
        with self._lock:
            return list(self._items)


def _builder(charge: Any) -> af.Builder[Order, Status]:
    """STARTED --charge--> CHARGED --finish--> DONE."""
    b = af.Builder("batches", Order, Status)
    b.add_step(Status.STARTED, charge, Status.CHARGED)
    b.add_step(Status.CHARGED, lambda run: Status.DONE, Status.DONE)
    return b


def _publish_outbox(wf: af.Workflow[Any, Any]) -> None:
    """Relay the outbox now, as the outbox relay would (nothing to do when the store publishes itself)."""
    if wf.publishes_directly:
        return
    rows = wf.record_store.list_outbox_events(wf.name, 1000)
    senders: dict[str, EventSender] = {}
    for row in rows:
        if row.topic not in senders:
            senders[row.topic] = wf.event_streamer.new_sender(row.topic)
        senders[row.topic].send(row.run_id, row.type, row.headers)
    for sender in senders.values():
        sender.flush()
        sender.close()
    for row in rows:
        wf.record_store.delete_outbox_event(row.id)


def _await_readable(wf: af.Workflow[Any, Any], count: int, timeout: float = 10.0) -> None:
    """Wait until a reader of the STARTED topic sees ``count`` events (e.g. PostgreSQL delays
    events behind a transaction still open elsewhere), so the step consumer's first receive
    gets them all."""
    receiver = wf.event_streamer.new_receiver(topic(wf.name, Status.STARTED), f"probe-{uuid.uuid4().hex[:8]}")
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"only {seen} of {count} events were readable within {timeout}s")
            seen += len(receiver.receive(100, min(remaining, 0.5)))
    finally:
        receiver.close()


def _spy_commits(
    monkeypatch: pytest.MonkeyPatch, wf: af.Workflow[Any, Any]
) -> list[list[tuple[af.Record, Exception | None]]]:
    """Each ``store_many`` call's records with their results, in call order."""
    store = wf.record_store
    original = store.store_many
    commits: list[list[tuple[af.Record, Exception | None]]] = []

    def store_many(records: Any, **options: Any) -> list[Exception | None]:
        records = list(records)
        results = original(records, **options)
        commits.append(list(zip(records, results, strict=True)))
        return results

    monkeypatch.setattr(store, "store_many", store_many)
    return commits


def _charged_commits(
    commits: list[list[tuple[af.Record, Exception | None]]], names: dict[str, str]
) -> list[list[tuple[str, str]]]:
    """The group commits of the charge step: (foreign id, "ok" or the error's class name) per record."""
    by_run = {run_id: foreign_id for foreign_id, run_id in names.items()}
    return [
        [(by_run[r.run_id], "ok" if e is None else type(e).__name__) for r, e in commit]
        for commit in list(commits)
        if any(r.status == Status.CHARGED for r, _ in commit)
    ]


def test_a_step_error_holds_its_own_run_and_the_other_runs_of_the_batch_go_on(build, monkeypatch):
    """Batch A, B, C, D with C failing twice: A, B and D commit together before C's retry; C follows alone."""
    log = _Log()
    ids: dict[str, str] = {}
    seen_at_first_retry: dict[str, int] = {}
    holder: dict[str, af.Workflow[Any, Any]] = {}

    def charge(run: af.Run[Order, Status]) -> Status:
        n = log.add(run.foreign_id)
        if run.foreign_id == "C" and n <= FAILS:
            if n == 2:  # the first retry: what the store holds by now
                store = holder["wf"].record_store
                seen_at_first_retry.update({fid: store.lookup(ids[fid]).status for fid in "ABD"})
            msg = f"C fails (attempt {n})"
            raise RuntimeError(msg)
        run.object.amount += 1
        return Status.CHARGED

    wf = build(_builder(charge))
    holder["wf"] = wf
    ids.update({fid: wf.trigger(fid, Order(id=fid)) for fid in "ABCD"})
    _publish_outbox(wf)
    _await_readable(wf, 4)
    commits = _spy_commits(monkeypatch, wf)
    wf.run()

    runs = {fid: wf.await_status(fid, ids[fid], Status.DONE, timeout=10) for fid in "ABCD"}
    assert {fid: (run.object.amount, run.meta.version) for fid, run in runs.items()} == dict.fromkeys("ABCD", (1, 3))
    # Each run's step ran once, C's after its failures; D did not wait for C.
    assert log.items() == ["A", "B", "C", "D", "C", "C"]
    # When C was first retried, A, B and D had been stored past STARTED.
    assert all(seen_at_first_retry[fid] != Status.STARTED for fid in "ABD"), seen_at_first_retry
    # A, B and D committed (together, unless a Kafka poll split the read) before C's retry,
    # which commits alone, last.
    charged = _charged_commits(commits, ids)
    assert charged[-1] == [("C", "ok")], charged
    assert sorted(entry for commit in charged[:-1] for entry in commit) == [("A", "ok"), ("B", "ok"), ("D", "ok")]


def test_a_version_conflict_in_a_group_commit_does_not_undo_the_other_transitions(
    build, monkeypatch, poll_until, caplog
):
    """Batch A, X, B where X's record is moved on by another writer mid-step: A and B commit, X conflicts.

    X's step stores a newer version of X itself (as another process would) before
    returning, so X's transition no longer fits the stored version. In the one commit of
    A, X and B only X is refused ("record version conflict"); the other writer's version
    of X is kept, and its own event steps X on from there.
    """
    log = _Log()
    holder: dict[str, af.Workflow[Any, Any]] = {}

    def charge(run: af.Run[Order, Status]) -> Status:
        n = log.add(run.foreign_id)
        if run.foreign_id == "X" and n == 1:
            wf = holder["wf"]
            record = wf.record_store.lookup(run.run_id)
            moved = wf.engine.transitions.next(
                record, run_state=af.RunState.RUNNING, data=wf.codec.encode(Order(id="X", amount=100))
            )
            wf.record_store.store(moved.record)  # another writer: X is now at version 2
        run.object.amount += 1
        return Status.CHARGED

    wf = build(_builder(charge))
    holder["wf"] = wf
    ids = {fid: wf.trigger(fid, Order(id=fid)) for fid in "AXB"}
    _publish_outbox(wf)
    _await_readable(wf, 3)
    commits = _spy_commits(monkeypatch, wf)
    conflicts_before = wf.metrics.skipped_events.value(wf.name, PROCESS, CONFLICT)
    wf.run()

    runs = {fid: wf.await_status(fid, ids[fid], Status.DONE, timeout=10) for fid in "AXB"}
    # A and B: their own transitions. X: the other writer's object (100), stepped on from it.
    assert {fid: (run.object.amount, run.meta.version) for fid, run in runs.items()} == {
        "A": (1, 3),
        "B": (1, 3),
        "X": (101, 4),
    }
    assert log.items() == ["A", "X", "B", "X"]
    # (X's later transition is a single write: some stores take it through store(), unseen here.)
    # X's refused write shares its commit with A's (and B's too, when the first read brought all
    # three: a Kafka poll may bring B's partition a read later), and neither is undone by it.
    first = _charged_commits(commits, ids)[0]
    assert first in (
        [("A", "ok"), ("X", "VersionConflict"), ("B", "ok")],
        [("A", "ok"), ("X", "VersionConflict")],
    ), first
    poll_until(
        lambda: wf.metrics.skipped_events.value(wf.name, PROCESS, CONFLICT) == conflicts_before + 1,
        what="the conflict being counted",
    )
    # The lost step is logged with its run and step (and node), not only counted.
    assert any(ids["X"] in r.getMessage() and "version 2 refused" in r.getMessage() for r in caplog.records), [
        r.getMessage() for r in caplog.records
    ]
    snapshots = [(r.status, r.meta.version) for r in wf.record_store.snapshots(ids["X"])]
    assert snapshots == [
        (Status.STARTED, 1),
        (Status.STARTED, 2),  # the other writer's version
        (Status.CHARGED, 3),
        (Status.DONE, 4),
    ]


class _LostAnswer(af.ActorflowError):
    """The store committed, then the connection was lost before its answer came back."""


@pytest.mark.parametrize("read_in_flight", [False, True], ids=["read-after", "read-in-flight"])
def test_a_commit_applied_whose_answer_was_lost_is_counted_once(build, monkeypatch, poll_until, read_in_flight):
    """The charge step's commit is stored, then the store raises as a lost connection would.

    The commit's outcome is unknown to the engine: its writes are held in doubt and, once a
    read finds them stored, counted (``workflow_run_state_changes``) exactly once; the runs
    finish, each transition stored once. ``read_in_flight``: another consumer reads the
    stored records before the failure reaches the committing one (as the next step's
    consumer can, the moment the server commits), and the next step is stored before any
    read sees the write in doubt.
    """
    wf = build(_builder(lambda run: Status.CHARGED))
    ids = {fid: wf.trigger(fid, Order(id=fid)) for fid in "ABC"}
    _publish_outbox(wf)
    _await_readable(wf, 3)
    store = wf.record_store
    lost: list[list[str]] = []

    def lose_the_answer(method: str) -> None:
        original = getattr(store, method)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            records = list(args[0]) if method == "store_many" else [args[0]]
            if not lost and any(r.status == Status.CHARGED for r in records):
                lost.append([r.run_id for r in records])
                if read_in_flight:
                    for record in records:
                        wf.engine.writer.observed(store.lookup(record.run_id))
                raise _LostAnswer("connection lost after the commit")
            return result

        monkeypatch.setattr(store, method, call)

    for method in ("store_many", "store"):
        if hasattr(store, method):
            lose_the_answer(method)

    def changes(previous: af.RunState, current: af.RunState) -> float:
        return wf.metrics.run_state_changes.value(wf.name, str(previous), str(current))

    running, completed = af.RunState.RUNNING, af.RunState.COMPLETED
    before = changes(af.RunState.INITIATED, running), changes(running, completed)  # the registry may be shared
    wf.run()

    runs = {fid: wf.await_status(fid, ids[fid], Status.DONE, timeout=10) for fid in "ABC"}
    assert lost, "no commit of the charge step was made"
    assert {fid: run.meta.version for fid, run in runs.items()} == dict.fromkeys("ABC", 3)
    for run_id in ids.values():
        assert [r.meta.version for r in store.snapshots(run_id)] == [1, 2, 3]
    poll_until(lambda: wf.engine.writer.in_doubt == 0, what="the writes in doubt being settled")

    def counted() -> tuple[float, float]:
        return changes(af.RunState.INITIATED, running) - before[0], changes(running, completed) - before[1]

    # await_status may read the last commit from the store before its writer has counted it.
    poll_until(lambda: counted() >= (3, 3), what="every transition counted")
    assert counted() == (3, 3)  # the lost answer's writes too, once each
