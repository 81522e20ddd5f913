"""The adapter contracts. Storage-shaped on purpose: workflow logic lives in the core.

An adapter implements these `typing.Protocol`s structurally (no base class to inherit)
and proves it by passing the conformance suites in `actorflow.testing.adaptertest`.
Optional capabilities (``Snapshots``, ``OutboxWaiter``, ``BatchStore``...) let an adapter
do better than the baseline; the core checks for them once, at build time.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from actorflow.clock import Clock
from actorflow.event import ConnectorEvent, Event, OutboxEvent
from actorflow.record import Record
from actorflow.runstate import RunState

__all__ = [
    "Attachable",
    "BatchLookup",
    "BatchStore",
    "ClockBorrower",
    "ConnectorConstructor",
    "ConnectorConsumer",
    "DirectPublisher",
    "ErrorCounter",
    "EventReceiver",
    "EventSender",
    "EventStreamer",
    "InFlightLog",
    "Lease",
    "OutboxWaiter",
    "PartitionedReceiver",
    "ReceiverOptions",
    "RecordFilter",
    "RecordStore",
    "RoleScheduler",
    "Snapshots",
    "TimeoutRecord",
    "TimeoutStore",
]

Order = Literal["asc", "desc"]


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiverOptions:
    """How a receiver reads its topic.

    Attributes:
        poll_frequency: how often to poll when the adapter cannot be woken (seconds).
        stream_from_latest: start at the head if the receiver name has no cursor yet:
            after every event sent before the receiver was made (on PostgreSQL, an event
            whose transaction was still open at that moment counts as sent before). The
            engine's own receivers never use it.
        shard: the 0-based shard this receiver serves; an adapter that can should
            deliver only events with ``shard_of(event.run_id, shard_count) == shard``
            (or, as a `PartitionedReceiver`, the share its own partitions make).
        shard_count: how many shards share the topic (1 = no sharding).
    """

    poll_frequency: float = 0.5
    stream_from_latest: bool = False
    shard: int = 0
    shard_count: int = 1


@runtime_checkable
class EventSender(Protocol):
    """Publishes events to one topic."""

    def send(self, run_id: str, event_type: int, headers: Mapping[str, str]) -> None:
        """Queue an event (the run id is its key: one run's events stay in order)."""
        ...

    def flush(self) -> None:
        """Return once every event sent so far is durable in the stream."""
        ...

    def close(self) -> None:
        """Flush and release the sender."""
        ...


@runtime_checkable
class EventReceiver(Protocol):
    """Reads one topic under a durable cursor named by the receiver's name."""

    def receive(self, max_events: int, timeout: float) -> Sequence[Event]:
        """Up to ``max_events`` events after those already delivered, in order.

        Blocks at most ``timeout`` seconds when none is available, returning as soon as
        one arrives (adapters that can be woken must not busy-poll).
        """
        ...

    def ack(self, event: Event) -> None:
        """Commit the cursor past ``event`` and every event delivered before it."""
        ...

    def close(self) -> None:
        """Release the receiver; unacknowledged events are delivered again next time."""
        ...


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
class EventStreamer(Protocol):
    """Creates senders and receivers for topics."""

    def new_sender(self, topic: str) -> EventSender:
        """A sender for ``topic``."""
        ...

    def new_receiver(self, topic: str, name: str, options: ReceiverOptions | None = None) -> EventReceiver:
        """A receiver of ``topic`` whose cursor is kept under ``name``."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class RecordFilter:
    """Conditions for `RecordStore.list`; every condition given must hold."""

    foreign_ids: tuple[str, ...] = ()
    statuses: tuple[int, ...] = ()
    run_states: tuple[RunState, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None

    def matches(self, record: Record) -> bool:
        """True when ``record`` meets every condition."""
        if self.foreign_ids and record.foreign_id not in self.foreign_ids:
            return False
        if self.statuses and record.status not in self.statuses:
            return False
        if self.run_states and record.run_state not in self.run_states:
            return False
        if self.created_after is not None and not record.created_at > self.created_after:
            return False
        return self.created_before is None or record.created_at < self.created_before


@runtime_checkable
class RecordStore(Protocol):
    """Keeps records and, in the same transaction, the outbox event of every write."""

    def store(self, record: Record) -> None:
        """Create or update ``record`` and write its outbox event atomically.

        ``record.meta.version`` is 1 for a new run: raise `WorkflowInProgress` if the
        foreign id has an unfinished run. Otherwise the stored version must be
        ``version - 1``, else raise `VersionConflict` (optimistic concurrency).
        Build the outbox event with `actorflow.event.make_outbox_event`.
        """
        ...

    def lookup(self, run_id: str) -> Record:
        """The record of ``run_id``; `RecordNotFound` if there is none."""
        ...

    def latest(self, workflow_name: str, foreign_id: str) -> Record:
        """The most recently created run of ``foreign_id``; `RecordNotFound` if none."""
        ...

    def list(
        self,
        workflow_name: str,
        *,
        offset: int = 0,
        limit: int = 25,
        order: Order = "asc",
        filter: RecordFilter | None = None,  # noqa: A002 - the contract's name
    ) -> builtins.list[Record]:
        """Records by creation order (``""`` lists every workflow), paged."""
        ...

    def list_outbox_events(self, workflow_name: str, limit: int) -> builtins.list[OutboxEvent]:
        """Up to ``limit`` outbox events of the workflow, oldest first."""
        ...

    def delete_outbox_event(self, id: str) -> None:  # noqa: A002 - the contract's name
        """Remove a relayed outbox event (unknown ids are ignored)."""
        ...


@runtime_checkable
class BatchStore(Protocol):
    """A record store that commits many writes together (group commit)."""

    def store_many(self, records: Sequence[Record]) -> builtins.list[Exception | None]:
        """Store each record as `RecordStore.store` would, in as few commits as possible.

        Returns one entry per record: ``None`` when stored, else the error that
        `store` would have raised; a failed record never undoes the others.
        """
        ...

    def delete_outbox_events(self, ids: Iterable[str]) -> None:
        """Remove many relayed outbox events at once."""
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
class OutboxWaiter(Protocol):
    """A record store that can wake the outbox relay when an outbox event is written."""

    def wait_for_outbox(self, workflow_name: str, timeout: float) -> None:
        """Block until the workflow may have new outbox events, or ``timeout`` seconds."""
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
        """Every stored version of the run, oldest first (empty when unknown)."""
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
    """Counts step errors per (process, run), toward ``pause_after_err_count``.

    A record store that is one must also forget a run's counts when it stores a new
    version of the run (every earlier count is then stale: the engine counts per visit),
    so that counts left by a node that died do not stay forever.
    """

    def add_error(self, process: str, run_id: str) -> int:
        """Count one more error; returns the count so far."""
        ...

    def clear_errors(self, process: str, run_id: str) -> None:
        """Forget the errors of (process, run): the run moved on."""
        ...


@runtime_checkable
class InFlightLog(Protocol):
    """A durable note of the runs a consumer is handling, to find runs that kill their node.

    A step that crashes the whole process (a segfault, the OOM killer) raises nothing
    to count. So before a batch a consumer notes its runs; a node that dies mid-batch
    leaves the note behind, and the next holder of the role counts one error against
    each of those runs when it meets them again, one event at a time, pausing a run at
    ``pause_after_err_count`` instead of running it once more. Used only by processes
    with ``pause_after_err_count`` set.
    """

    def begin_batch(self, process: str, run_ids: Sequence[str]) -> None:
        """Note (durably) that ``process`` is about to handle these runs."""
        ...

    def unfinished_batch(self, process: str) -> builtins.list[str]:
        """The runs of the last batch ``process`` noted and did not finish (empty if none)."""
        ...

    def end_batches(self, process: str) -> None:
        """``process`` stopped cleanly: nothing of it is in flight."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class TimeoutRecord:
    """A timeout: when it expires, the run's timeout function runs."""

    id: int
    workflow_name: str
    foreign_id: str
    run_id: str
    status: int
    completed: bool
    expire_at: datetime
    created_at: datetime


@runtime_checkable
class TimeoutStore(Protocol):
    """Keeps timeouts."""

    def create(
        self,
        workflow_name: str,
        foreign_id: str,
        run_id: str,
        status: int,
        expire_at: datetime,
        *,
        created_at: datetime | None = None,
    ) -> int:
        """Store a new timeout; returns its id (ids start at 1 and increase)."""
        ...

    def complete(self, id: int) -> None:  # noqa: A002 - the contract's name
        """Mark a timeout done (it no longer fires)."""
        ...

    def cancel(self, id: int) -> None:  # noqa: A002 - the contract's name
        """Remove a timeout; an unknown id raises `TimeoutNotFound`."""
        ...

    def list(self, workflow_name: str) -> builtins.list[TimeoutRecord]:
        """Uncompleted timeouts of the workflow, by id."""
        ...

    def list_valid(self, workflow_name: str, status: int, now: datetime) -> builtins.list[TimeoutRecord]:
        """Uncompleted timeouts of the status that expired at or before ``now``, by id."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class Lease:
    """A role held by a node.

    Attributes:
        role: the role's name.
        node_id: the holder.
        ttl: seconds the lease stays valid from the `acquire` call that returned it;
            ``None`` when it lasts until released. The node stops working the role
            before that time unless it renewed the lease.
    """

    role: str
    node_id: str
    ttl: float | None = None


@runtime_checkable
class RoleScheduler(Protocol):
    """Decides which node may work each role: at most one node at a time."""

    def acquire(self, role: str, node_id: str) -> Lease | None:
        """Take or renew ``role`` for ``node_id`` without blocking; ``None`` if held elsewhere."""
        ...

    def release(self, role: str, node_id: str) -> None:
        """Give ``role`` up if ``node_id`` holds it."""
        ...


@runtime_checkable
class ConnectorConsumer(Protocol):
    """Reads an external stream for a connector."""

    def receive(self, max_events: int, timeout: float) -> Sequence[ConnectorEvent]:
        """Up to ``max_events`` events after those already delivered; blocks ``timeout`` at most."""
        ...

    def ack(self, event: ConnectorEvent) -> None:
        """Commit the cursor past ``event`` and everything delivered before it."""
        ...

    def close(self) -> None:
        """Release the consumer."""
        ...


@runtime_checkable
class ConnectorConstructor(Protocol):
    """Makes a connector consumer for one shard of a connector."""

    def make(self, name: str, options: ReceiverOptions) -> ConnectorConsumer:
        """A consumer whose cursor is kept under ``name`` (the connector's role)."""
        ...
