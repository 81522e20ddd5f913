"""Optional adapter capabilities: what an adapter may do better than the baseline contracts.

The engine checks for each of these once, when a workflow is built (`isinstance` on the
`runtime_checkable` protocols), and uses it when the adapter has it; every one of them
has a baseline fallback, so an adapter that implements none is still correct. Every
adapter shipped with actorflow implements most of them; the conformance suites test each
one an adapter claims.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from actorflow.clock import Clock
from actorflow.event import Event
from actorflow.protocols import EventStreamer, Fence, Order, RecordFilter, RoleScheduler
from actorflow.record import Record
from actorflow.runstate import RunState

__all__ = [
    "Attachable",
    "BatchLookup",
    "BatchStore",
    "ClockBorrower",
    "CommitAcks",
    "CursorMove",
    "CursorMoves",
    "DirectPublisher",
    "ErrorCounter",
    "FencedAcks",
    "FencedReceiver",
    "FencedStore",
    "FencedTimeouts",
    "FleetChanges",
    "FleetView",
    "InFlightLog",
    "InterruptibleOutboxWaiter",
    "InterruptibleReceiver",
    "LocalWakeups",
    "Membership",
    "NodeInfo",
    "OutboxWaiter",
    "OwnEventLog",
    "PartitionedReceiver",
    "QuietReceiver",
    "RecordPage",
    "RecordPages",
    "RecordsAlong",
    "RunCount",
    "Snapshots",
    "WakeableReceiver",
]


@runtime_checkable
class PartitionedReceiver(Protocol):
    """A receiver (or connector consumer) whose shard's share is the adapter's own partitions (Kafka's).

    Shard i of n reading only its partitions covers every event with the other shards,
    whichever producer placed it (a Go service's partitioner included). The consumer
    then handles every event it is given instead of re-filtering by
    ``shard_of(run_id)``, which would drop the events another producer's partitioner
    put on this shard's partitions. One run's events still meet one shard as long as
    one producer places them; the version check keeps transitions exactly-once if not.
    """

    def partitioned(self) -> bool:
        """True when this receiver delivers exactly its partitions' events (no re-filter)."""
        ...


@runtime_checkable
class WakeableReceiver(Protocol):
    """A receiver whose waiting `receive` another thread can cut short (Kafka's).

    A step consumer on such a receiver takes the events of its own engine's writes
    straight from the writer (``engine/handoff.py``) when the store cannot publish them
    itself: `wake` makes a waiting `receive` return soon (empty if nothing came), so
    the consumer picks them up instead of waiting for the streamer's copy.
    """

    def wake(self) -> None:
        """Make the current or next waiting `receive` return soon; any thread may call it."""
        ...


@runtime_checkable
class QuietReceiver(Protocol):
    """A receiver that may answer from memory that nothing new was announced (PostgreSQL's).

    A step consumer that took events from its node's writer (``engine/handoff.py``) reads
    their copies in the log before its role goes, so its cursor passes them: `look_again`
    makes the next `receive` read the log even though no notification came.
    """

    def look_again(self) -> None:
        """Make the next `receive` read the log, whatever was announced since the last read."""
        ...


@runtime_checkable
class InterruptibleReceiver(Protocol):
    """A receiver whose waiting `receive` can be cut short when its node stops.

    The node's stop then takes effect at once instead of after the receiver's wait (up to
    a tick, 0.2 s). Unlike `WakeableReceiver` it says nothing about handing events over.
    """

    def interrupt(self) -> None:
        """Make the current or next waiting `receive` return soon; any thread may call it."""
        ...


@runtime_checkable
class BatchStore(Protocol):
    """A record store that commits many writes together (group commit).

    The engine writes through `store_many` whenever a store has it, one record or many,
    so this is the store's one write path for the engine.
    """

    def store_many(self, records: Sequence[Record], *, forget_errors: bool = False) -> builtins.list[Exception | None]:
        """Store each record as `RecordStore.store` would, in as few commits as possible.

        Returns one entry per record: ``None`` when stored, else the error that
        `store` would have raised; a failed record never undoes the others. With
        ``forget_errors`` (asked by the engine only of a store that is its
        `ErrorCounter`), the step-error counts of each run stored are deleted in the
        same transaction: the engine counts errors per visit to a status, so a new
        version makes every count of the run stale.
        """
        ...

    def delete_outbox_events(self, ids: Iterable[str]) -> None:
        """Remove many relayed outbox events at once."""
        ...


@runtime_checkable
class FencedStore(Protocol):
    """A record store that checks a role's lease in the transaction of the role's writes (fencing).

    A node that was frozen or cut off may wake up after its role passed to another node
    and try to commit what it had in hand. When the store keeps its records in the same
    database as the role scheduler's leases, it can refuse such a write atomically: the
    lease named by the write's `Fence` must still be the role's current one, checked in
    the write's own transaction (and held, so the role cannot pass on before it commits).
    """

    def fences_with(self, role_scheduler: RoleScheduler) -> bool:
        """True when ``role_scheduler``'s leases are in this store's database. Must not connect."""
        ...

    def store_many(
        self, records: Sequence[Record], *, forget_errors: bool = False, fence: Fence | None = None
    ) -> builtins.list[Exception | None]:
        """As `BatchStore.store_many`; with ``fence``, raise `StaleTerm` and store nothing unless it is current."""
        ...


@runtime_checkable
class FencedAcks(Protocol):
    """An event streamer whose receivers can check a role's lease in the transaction of an acknowledgement.

    It keeps its cursors in the role scheduler's database: a node that lost a role
    cannot move the cursor of the node that now holds it. Its receivers are
    `FencedReceiver`s.
    """

    def fences_with(self, role_scheduler: RoleScheduler) -> bool:
        """True when ``role_scheduler``'s leases are in this streamer's database. Must not connect."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class CursorMove:
    """A receiver's acknowledgement, made by the record store in the transaction of a batch (`CommitAcks`).

    ``position`` is the adapter's own cursor position (what its receiver would save).
    """

    topic: str
    name: str
    position: tuple[Any, ...]


@runtime_checkable
class CursorMoves(Protocol):
    """A receiver whose acknowledgements a `CommitAcks` store can make in its commits."""

    def cursor_move(self, event: Event) -> CursorMove | None:
        """The acknowledgement up to ``event`` as a move for the store's next commit (``None``: nothing to move).

        The receiver counts it as made: the caller commits it, or drops the receiver (its
        next holder reads from the durable cursor).
        """
        ...


@runtime_checkable
class RecordsAlong(Protocol):
    """A receiver that reads each event's current record in the same query as the event.

    When the record store keeps its records in the streamer's database, a consumer then
    needs no lookup round trip of its own for the events it is about to handle.
    """

    def read_records_along(self) -> None:
        """From now on, read each event's record with it (the caller knows the store shares the database)."""
        ...

    def records(self) -> dict[str, Record]:
        """The records read with the events of the last `receive`, by run id (taken: the next call has none)."""
        ...


@runtime_checkable
class CommitAcks(Protocol):
    """A record store that moves a cursor of its own database in the transaction of a batch of records.

    A consumer's acknowledgement then rides in the commit of the writes it follows: one
    transaction per batch instead of two, and the cursor moves exactly when they commit.
    """

    def acks_for(self, event_streamer: EventStreamer) -> bool:
        """True when ``event_streamer``'s cursors are in this store's database. Must not connect."""
        ...

    def store_many(
        self,
        records: Sequence[Record],
        *,
        forget_errors: bool = False,
        fence: Fence | None = None,
        acks: Sequence[CursorMove] = (),
    ) -> builtins.list[Exception | None]:
        """As `FencedStore.store_many`; the cursor moves in ``acks`` are made in the same transaction."""
        ...


@runtime_checkable
class FencedReceiver(Protocol):
    """A receiver of a `FencedAcks` streamer: acknowledgements under a role's lease."""

    def ack_fenced(self, event: Event, fence: Fence) -> None:
        """As `EventReceiver.ack`, but raise `StaleTerm` and move nothing unless ``fence`` is current."""
        ...


@runtime_checkable
class FencedTimeouts(Protocol):
    """A timeout store that checks a role's lease in the transaction of the role's timeout writes.

    Its timeouts live in the role scheduler's database: a timeout inserter or poller that
    lost its role cannot create, complete or cancel timeouts any more.
    """

    def fences_with(self, role_scheduler: RoleScheduler) -> bool:
        """True when ``role_scheduler``'s leases are in this store's database. Must not connect."""
        ...

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
        """As `TimeoutStore.create`; with ``fence``, raise `StaleTerm` and store nothing unless it is current."""
        ...

    def complete(self, id: int, *, fence: Fence | None = None) -> None:  # noqa: A002 - the contract's name
        """As `TimeoutStore.complete`; with ``fence``, as `create`."""
        ...

    def cancel(self, id: int, *, fence: Fence | None = None) -> None:  # noqa: A002 - the contract's name
        """As `TimeoutStore.cancel`; with ``fence``, as `create`."""
        ...


@runtime_checkable
class BatchLookup(Protocol):
    """A record store that reads many records in one round trip."""

    def lookup_many(self, run_ids: Iterable[str]) -> dict[str, Record]:
        """The records of ``run_ids`` by run id; unknown (or unreadable) ones are left out."""
        ...


@runtime_checkable
class DirectPublisher(Protocol):
    """A record store that can write a workflow's events straight into its event streamer.

    When the streamer keeps its events in the same database, the event is written in the
    record's own transaction: a transition is one commit and the outbox relay has
    nothing to do (the core then does not start it).
    """

    def publish_directly(self, workflow_name: str, event_streamer: EventStreamer) -> bool:
        """Write ``workflow_name``'s events into ``event_streamer`` from now on, if it can.

        Returns False (and changes nothing) when the streamer is not in the same
        database. Must not connect: it is called when a workflow is built.
        """
        ...


@runtime_checkable
class LocalWakeups(Protocol):
    """A store publishing directly whose commits can leave this process's own consumers unwoken.

    A commit wakes the receivers of the events it writes (PostgreSQL: a notification;
    MySQL: this process's in-memory wake-ups),
    and each woken receiver reads them back: a round trip per hop of a run. When the
    committing process holds the consumer of an event's shard, the `Writer` hands the
    event to it, with its record, right after the commit (``engine/handoff.py``): the
    wake-up and the read are then only the event's twin, read later in a batch to move
    the cursor.
    """

    def wake_locally(self, workflow_name: str, handed: Callable[[Record], bool]) -> bool:
        """From now on, leave out of ``workflow_name``'s wake-ups each record for which ``handed`` is true.

        ``handed(record)`` says a consumer of this process takes the record's event from
        the writer. Returns False (and changes nothing) when the store does not publish
        the workflow's events itself. Must not connect: it is called when a workflow is built.
        """
        ...


@runtime_checkable
class OwnEventLog(Protocol):
    """A record store whose database also holds an event log (its own streamer's).

    A tool that writes runs without the workflow's code (``actorflow runs``) must publish
    their events where the workflow's nodes read them: into this log when the nodes'
    streamer is on the same database (`DirectPublisher`), else into the outbox.
    """

    def carries_events_of(self, workflow_name: str, topics: Sequence[str]) -> bool:
        """True when this database's event log is in use for ``workflow_name``.

        The workflow's consumers keep cursors here, or the log holds events of one of
        ``topics`` (a run's own topic: its first events are there before any cursor is).
        """
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class RecordPage:
    """One page of `RecordPages.page`: the records, and the cursor of the page after them."""

    records: builtins.list[Record]
    next: str | None
    """Pass as ``after`` for the next page; ``None`` when this is the last one."""


@dataclasses.dataclass(frozen=True, slots=True)
class RunCount:
    """How many runs of a workflow are at a status and run state (`RecordPages.count_runs`)."""

    workflow_name: str
    status: int
    status_name: str
    run_state: RunState
    count: int


@runtime_checkable
class RecordPages(Protocol):
    """A record store that pages by cursor (keyset) and counts runs, for browsing tools.

    A cursor page stays right while runs are created (an offset would shift) and costs the
    same on page 1,000 as on page 1.
    """

    def page(
        self,
        workflow_name: str,
        *,
        limit: int = 50,
        order: Order = "desc",
        filter: RecordFilter | None = None,  # noqa: A002 - as in RecordStore.list
        after: str | None = None,
    ) -> RecordPage:
        """Up to ``limit`` records in creation order (``""``: every workflow), after the cursor ``after``.

        A cursor is opaque: one this store returned, or an `InvalidCursor` is raised.
        """
        ...

    def count_runs(self, workflow_name: str, *, filter: RecordFilter | None = None) -> builtins.list[RunCount]:  # noqa: A002
        """The number of matching runs per (workflow, status, status name, run state)."""
        ...


@runtime_checkable
class OutboxWaiter(Protocol):
    """A record store that can wake the outbox relay when an outbox event is written."""

    def wait_for_outbox(self, workflow_name: str, timeout: float) -> None:
        """Block until the workflow may have new outbox events, or ``timeout`` seconds."""
        ...


@runtime_checkable
class InterruptibleOutboxWaiter(OutboxWaiter, Protocol):
    """An `OutboxWaiter` whose wait another thread can cut short: a stopping node's relay returns at once."""

    def interrupt_outbox_wait(self, workflow_name: str) -> None:
        """Make the workflow's `wait_for_outbox` calls in progress return now (a spurious wake-up)."""
        ...


@runtime_checkable
class Attachable(Protocol):
    """An adapter holding resources (pools, threads) that its users attach to.

    A supervisor attaches to each adapter of its workflows when it starts and detaches
    when it stops; the adapter releases its resources when the last user detaches (and
    opens them again, lazily, if used afterwards). So ``stop()`` leaves no thread behind.
    """

    def attach(self) -> None:
        """One more user of the adapter."""
        ...

    def detach(self) -> None:
        """One user fewer; at none, release connections and threads."""
        ...


@runtime_checkable
class Snapshots(Protocol):
    """A record store that keeps every stored version of a run (for await and tests).

    Without it, `Workflow.await_status` sees only the versions it reads while it waits
    (and those this process wrote): a status the run passed through, on another node,
    before the wait began is missed. Every store shipped with actorflow has it.
    """

    def snapshots(self, run_id: str) -> builtins.list[Record]:
        """Every stored version of the run, oldest first (empty when unknown).

        Once a Data Deleted version is stored, every version carries its object: the
        store replaces the object of the earlier ones in the same transaction (the
        rest of each version stays), so nothing of the deleted object is kept.
        """
        ...


@runtime_checkable
class ClockBorrower(Protocol):
    """An adapter that stamps times itself (an event's ``created_at``).

    A workflow lends it the workflow's clock when it is built on it, so that a fake
    clock given to ``build()`` moves event times too (see `actorflow.clock.AdapterClock`).
    """

    def use_clock(self, clock: Clock) -> None:
        """Stamp times with ``clock``, unless the adapter was given or lent one before."""
        ...


@runtime_checkable
class ErrorCounter(Protocol):
    """Counts step errors per (process key, run), durably, toward ``pause_after_err_count``.

    The engine decides what is counted and when counts go stale: it counts per visit
    (the key names the run's version) and, when the store is also a `BatchStore`, asks
    it to forget a run's counts in the same transaction as the run's next version
    (``store_many(..., forget_errors=True)``). A store without `BatchStore` keeps stale
    counts; they are never read again (a later visit has another key).
    """

    def add_error(self, process: str, run_id: str) -> int:
        """Count one more error; returns the count so far."""
        ...

    def clear_errors(self, process: str, run_id: str) -> None:
        """Forget the errors of (process, run)."""
        ...


@runtime_checkable
class InFlightLog(Protocol):
    """A durable note of the runs a consumer is handling, to find runs that kill their node.

    A step that crashes the whole process (a segfault, the OOM killer) raises nothing
    to count. So before a batch a consumer notes its runs; a node that dies mid-batch
    leaves the note behind. The next holder of the role meets the runs of a note of
    several one at a time, each under a note of its own, and counts no error against
    them: any of them may have been the one. A note of one run names the culprit: the
    next holder counts one error against it, pausing it at ``pause_after_err_count``
    instead of running it once more. Used only by processes with
    ``pause_after_err_count`` set.
    """

    def begin_batch(self, process: str, run_ids: Sequence[str]) -> None:
        """Note (durably) that ``process`` is about to handle these runs."""
        ...

    def unfinished_batch(self, process: str) -> builtins.list[str]:
        """The runs of the last batch ``process`` noted and did not finish (empty if none)."""
        ...

    def end_batches(self, process: str) -> None:
        """Nothing of ``process`` is in flight: it stopped cleanly, or has nothing in hand."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class FleetView:
    """The fleet as one heartbeat saw it (`Membership.heartbeat`).

    Attributes:
        joined: False when the node is not registered (it never joined, or it stayed
            away past its ttl and was dropped): it must `join` again; nothing was renewed.
        leases: the roles this node holds, renewed by the heartbeat, with their terms.
        candidates: each role some live node may work, with those nodes.
        holders: each role held now, and by which node.
        ttl: seconds the heartbeat's renewals last, from the start of the call.
    """

    joined: bool
    leases: Mapping[str, int]
    candidates: Mapping[str, tuple[str, ...]]
    holders: Mapping[str, str]
    ttl: float


@dataclasses.dataclass(frozen=True, slots=True)
class NodeInfo:
    """A live node of the fleet: when it started, its last heartbeat, the roles it holds."""

    node_id: str
    started_at: datetime
    heartbeat_at: datetime
    roles: tuple[str, ...]


@runtime_checkable
class Membership(Protocol):
    """A role scheduler that knows the live nodes of the fleet, so the engine can spread roles over them.

    A node joins when its supervisor starts (never when a scheduler is made, a workflow
    built or a run triggered: a process that only triggers must never be given roles),
    then heartbeats: one call renews the node and every lease it holds, and tells what
    the engine needs to place roles (by rendezvous hashing over each role's live
    candidates). Membership is timed like the leases, by the scheduler's clock.
    """

    def join(self, node_id: str, roles: Sequence[str]) -> None:
        """Register ``node_id`` as live, able to work ``roles`` (replacing what it said before)."""
        ...

    def heartbeat(self, node_id: str) -> FleetView:
        """Renew the node and all its leases in one statement; the fleet as it is now."""
        ...

    def leave(self, node_id: str) -> None:
        """The node stops: release its leases and drop it from the live nodes, at once."""
        ...

    def nodes(self) -> builtins.list[NodeInfo]:
        """The live nodes, by id."""
        ...


@runtime_checkable
class FleetChanges(Protocol):
    """A membership scheduler that can tell, cheaply and locally, that the fleet may have changed.

    Another node released a role, left or joined: the engine heartbeats at once instead
    of at its next interval, so a clean handoff takes a fraction of a second.
    """

    def fleet_changes(self) -> int:
        """A counter that moves when the fleet may have changed (read often: no I/O)."""
        ...
