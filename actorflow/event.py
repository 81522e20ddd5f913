"""Events: what streamers carry, what connectors deliver, and the outbox rows stores keep."""

from __future__ import annotations

import dataclasses
import os
import zlib
from collections.abc import Mapping
from datetime import datetime

from actorflow.record import Record
from actorflow.runstate import RunState
from actorflow.topics import delete_topic, run_state_change_topic, topic

__all__ = [
    "ConnectorEvent",
    "Event",
    "Header",
    "OutboxEvent",
    "connector_key",
    "event_headers",
    "event_topic",
    "make_outbox_event",
    "shard_hash",
    "shard_of",
]


class Header:
    """Event header keys, exactly as the original writes them."""

    WORKFLOW_NAME = "workflow_name"
    FOREIGN_ID = "foreign_id"
    TOPIC = "topic"
    RUN_ID = "run_id"
    RUN_STATE = "run_state"
    RECORD_VERSION = "record_version"
    CONNECTOR_DATA = "connector_data"


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One event read from a streamer.

    Attributes:
        id: position assigned by the streamer (monotonic per topic and receiver).
        run_id: the run the event is about; the message key on Kafka.
        type: the status the run moved to.
        headers: `Header` keys to strings.
        created_at: when the streamer accepted the event.
        malformed: why the adapter could not read the message ("" when it could). An
            adapter hands such an event over instead of dropping it, so the engine
            reports it, counts it (``actorflow_malformed_events``) and moves past it.
    """

    id: int
    run_id: str
    type: int
    headers: Mapping[str, str]
    created_at: datetime
    malformed: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectorEvent:
    """An event from an external stream, handed to a connector function.

    ``malformed`` says why the adapter could not read the message ("" when it could):
    the connector process then reports and counts it (``actorflow_malformed_events``)
    and moves past it instead of calling the connector function.
    """

    id: str
    foreign_id: str
    type: str = ""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    created_at: datetime | None = None
    malformed: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxEvent:
    """An event a record store keeps, written in the same transaction as its record.

    The outbox relay sends it to ``headers["topic"]`` and then deletes it.
    """

    id: str
    workflow_name: str
    run_id: str
    type: int
    headers: Mapping[str, str]
    created_at: datetime

    @property
    def topic(self) -> str:
        """The topic the event goes to."""
        return self.headers[Header.TOPIC]


def event_topic(record: Record) -> str:
    """Where a stored record's event goes, by its run state (the original's routing)."""
    state = record.run_state
    if state is RunState.REQUESTED_DATA_DELETED:
        return delete_topic(record.workflow_name)
    if state in (
        RunState.PAUSED,
        RunState.CANCELLED,
        RunState.DATA_DELETED,
        RunState.COMPLETED,
    ):
        return run_state_change_topic(record.workflow_name)
    return topic(record.workflow_name, record.status)


def event_headers(record: Record) -> dict[str, str]:
    """The headers of the event a stored record produces."""
    return {
        Header.WORKFLOW_NAME: record.workflow_name,
        Header.FOREIGN_ID: record.foreign_id,
        Header.TOPIC: event_topic(record),
        Header.RUN_ID: record.run_id,
        Header.RUN_STATE: _decimal(int(record.run_state)),
        Header.RECORD_VERSION: _decimal(record.meta.version),
    }


_DECIMALS = tuple(str(n) for n in range(256))


def _decimal(n: int) -> str:
    """``str(n)``, one shared string for small numbers (every event carries two)."""
    return _DECIMALS[n] if 0 <= n < len(_DECIMALS) else str(n)


def _uuid4_text() -> str:
    """``str(uuid.uuid4())`` without the UUID object (same bits set, same text)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def make_outbox_event(record: Record) -> OutboxEvent:
    """The outbox row a record store writes with ``record`` (call it inside the transaction).

    Stores call this so the routing rules live once, in the core.
    """
    return OutboxEvent(
        id=f"outbox-id-{_uuid4_text()}",
        workflow_name=record.workflow_name,
        run_id=record.run_id,
        type=record.status,
        headers=event_headers(record),
        created_at=record.updated_at,
    )


def connector_key(event: ConnectorEvent) -> str:
    """The shard key of a connector event: its foreign id (its id when it has none)."""
    return event.foreign_id or event.id


def shard_hash(key: str) -> int:
    """The hash every shard decision is made from: CRC-32 of the key's UTF-8.

    One hash everywhere (steps, hooks, connectors, the adapters that store it beside an
    event or place events on partitions by it), so one run's events always land on one
    shard and stay in order. CRC-32 is stable across processes and languages and cheap.
    """
    return zlib.crc32(key.encode())


def shard_of(key: str, count: int) -> int:
    """The 0-based shard of ``key`` among ``count`` shards: ``shard_hash(key) % count``."""
    if count <= 1:
        return 0
    return shard_hash(key) % count
