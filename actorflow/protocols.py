"""The adapter author's contracts: what every adapter must do. Storage-shaped on purpose.

An adapter implements these `typing.Protocol`s structurally (no base class to inherit)
and proves it by passing the conformance suites in `actorflow.testing.adaptertest`.
Workflow logic (versions, transitions, error counting, sharding) lives in the engine;
an adapter stores and moves what it is given. What an adapter may do better than this
baseline (group commit, wake-ups, durable error counts...) is an optional capability in
`actorflow.capabilities`, which the engine detects once, when a workflow is built.

The data types an adapter reads and writes are re-exported here, so one import serves
an adapter author: `Record`, `RecordMeta`, `RunState`, `Event`, `ConnectorEvent`,
`OutboxEvent`, `Header`, `make_outbox_event`, `shard_hash` and `shard_of`.
"""

from __future__ import annotations

import builtins
import dataclasses
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from actorflow._deprecation import moved_names
from actorflow.errors import InvalidTimeout
from actorflow.event import ConnectorEvent, Event, Header, OutboxEvent, make_outbox_event, shard_hash, shard_of
from actorflow.record import Record, RecordMeta
from actorflow.runstate import RunState

__all__ = [
    "ConnectorConstructor",
    "ConnectorConsumer",
    "ConnectorEvent",
    "Event",
    "EventReceiver",
    "EventSender",
    "EventStreamer",
    "Fence",
    "Header",
    "Lease",
    "Order",
    "OutboxEvent",
    "ReceiverOptions",
    "Record",
    "RecordFilter",
    "RecordMeta",
    "RecordStore",
    "RoleScheduler",
    "RunState",
    "TimeoutRecord",
    "TimeoutStore",
    "make_outbox_event",
    "new_node_id",
    "shard_hash",
    "shard_of",
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
    foreign_id_prefix: str = ""
    """Only runs whose foreign id starts with it (exactly: case and ``%``/``_`` as given)."""
    status_names: tuple[str, ...] = ()
    """Only runs whose status, as named when stored (``meta.status_description``), is one of these."""

    def matches(self, record: Record) -> bool:
        """True when ``record`` meets every condition."""
        if self.foreign_ids and record.foreign_id not in self.foreign_ids:
            return False
        if self.foreign_id_prefix and not record.foreign_id.startswith(self.foreign_id_prefix):
            return False
        if self.statuses and record.status not in self.statuses:
            return False
        if self.status_names and record.meta.status_description not in self.status_names:
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

        ``record.meta.version`` is 1 for a new run: raise `InvalidForeignId` before
        writing anything if its foreign id breaks the one rule
        (`actorflow.record.foreign_id_refusal`), `WorkflowInProgress` if the foreign id
        has an unfinished run. Otherwise the stored version must be ``version - 1``,
        else raise `VersionConflict` (optimistic concurrency). Build the outbox event
        with `actorflow.event.make_outbox_event`.
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


@dataclasses.dataclass(frozen=True, slots=True)
class TimeoutRecord:
    """A timeout: when it expires, the run's timeout function runs.

    ``index`` is which timeout of the status it is (the position of its timer among the
    status's timeouts, in the order they were added) and ``record_version`` the run's
    version when it reached the status (the visit that set it): it fires only that
    timeout's function, and only on that visit. ``None`` for both on a timeout stored
    without them (older releases): every function of the status is tried, as before.
    """

    id: int
    workflow_name: str
    foreign_id: str
    run_id: str
    status: int
    completed: bool
    expire_at: datetime
    created_at: datetime
    index: int | None = None
    record_version: int | None = None


def check_timeout_visit(index: object, record_version: object) -> None:
    """Refuse (`InvalidTimeout`) an ``index`` below 0 or a ``record_version`` below 1 that is not ``None``.

    Timeout stores call it before storing anything, so every store refuses the same values.
    """
    if index is not None and (type(index) is not int or index < 0):
        msg = f"a timeout's index must be an int from 0 or None, got {index!r}"
        raise InvalidTimeout(msg, index=index)
    if record_version is not None and (type(record_version) is not int or record_version < 1):
        msg = f"a timeout's record version must be an int from 1 or None, got {record_version!r}"
        raise InvalidTimeout(msg, record_version=record_version)


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
        index: int | None = None,
        record_version: int | None = None,
    ) -> int:
        """Store a new timeout; returns its id (ids start at 1 and increase).

        ``index`` and ``record_version`` are kept as given and listed back in the
        `TimeoutRecord` (``None`` when not given); `check_timeout_visit` refuses bad ones.
        """
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
        term: the fencing term: it grows each time the role passes to another node and
            stays the same while one node renews it, so a write made under an older
            term can be told from its successor's. ``0``: the scheduler keeps none.
    """

    role: str
    node_id: str
    ttl: float | None = None
    term: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Fence:
    """The lease a role's write is made under: a store that fences refuses it once the role moved on.

    Attributes:
        role: the role whose work the write is.
        node_id: the node that made it.
        term: the term of that node's lease on the role (`Lease.term`).
    """

    role: str
    node_id: str
    term: int


def new_node_id() -> str:
    """A node id unique in a fleet and readable in a log: host, process id, a short random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


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


# The optional capabilities lived here before 0.2; they moved to actorflow.capabilities.
__getattr__ = moved_names(
    __name__,
    dict.fromkeys(
        [
            "Attachable",
            "BatchLookup",
            "BatchStore",
            "ClockBorrower",
            "DirectPublisher",
            "ErrorCounter",
            "InFlightLog",
            "OutboxWaiter",
            "PartitionedReceiver",
            "Snapshots",
        ],
        "actorflow.capabilities",
    ),
)
