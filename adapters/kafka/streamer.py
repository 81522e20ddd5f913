"""`KafkaEventStreamer`: workflow events on Kafka topics, in the original's wire format.

A message is what luno/workflow's ``kafkastreamer`` writes: key = run id, value = the
status as a decimal string, headers = the event headers (UTF-8). So a Go service and a
Python one can read each other's events.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import kafka.errors

from actorflow.clock import AdapterClock, Clock
from actorflow.event import Event, Header, shard_hash, shard_of
from actorflow.protocols import ReceiverOptions

from ._client import BLOCK_TIMEOUT, Clients, KafkaError, wrap_exceptions
from ._reader import LocalCopies, Offered, PartitionReader, Unreadable, shard_partitions

__all__ = ["KafkaEventStreamer", "event_id", "event_position"]

logger = logging.getLogger("actorflow.kafka")

_PARTITION_BITS = 16  # Event.id = offset << 16 | partition: ack() finds (partition, offset) in it
_MAX_PARTITIONS = 1 << _PARTITION_BITS
# What a message may hold (see `_Receiver._event`). A status is a signed 64-bit integer in
# ASCII decimal (Go's strconv.FormatInt): at most 19 digits, so int() never sees a number
# long enough to be slow or refused (Python's int max str digits), then range-checked.
_STATUS = re.compile(rb"-?[0-9]{1,19}")
# The headers the core reads as numbers: a non-negative 64-bit integer in ASCII decimal.
_NUMBER = re.compile(r"[0-9]{1,19}", re.ASCII)
_NUMERIC_HEADERS = (Header.RUN_STATE, Header.RECORD_VERSION)
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_QUOTED = 40  # characters of a bad value quoted in the reason it is malformed
_REQUIRED_HEADERS = (Header.TOPIC,)  # every event the core publishes carries these
# The latest message timestamp a datetime holds (9999-12-31); later or negative ones are ignored.
_MAX_TIMESTAMP_MS = (datetime.max.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
_FLUSH_TIMEOUT = BLOCK_TIMEOUT  # seconds flush() waits for the brokers' acknowledgements, by default
_CLOSE_TIMEOUT = 1.0  # seconds close() waits for them, unless a flush just found the brokers away


def event_id(partition: int, offset: int) -> int:
    """The `Event.id` of the message at (partition, offset): increasing within a partition."""
    return offset << _PARTITION_BITS | partition


def event_position(id_: int) -> tuple[int, int]:
    """The (partition, offset) an `Event.id` stands for."""
    return id_ & (_MAX_PARTITIONS - 1), id_ >> _PARTITION_BITS


def _millis(when: datetime) -> int:
    return int(when.timestamp() * 1000)


class KafkaEventStreamer:
    """An event streamer over Kafka (kafka-python), one topic per actorflow topic.

    Topics are ``topic_prefix + name`` and are created (with ``partitions`` partitions)
    the first time a sender or receiver is made for them. A run's events all go to
    partition ``shard_hash(run_id) % partitions`` (CRC-32), so they stay in order. Receivers read
    assigned partitions and commit their offsets under a consumer group named after the
    receiver (the role). See the package docstring for sharding and security options.

    Args:
        bootstrap_servers: ``"host:port"``, comma-separated hosts, or a list of them.
        topic_prefix: prepended to every topic name (e.g. ``"staging."``).
        partitions: partitions of the topics this streamer creates; at least the largest
            ``parallel_count`` of the workflows, and best a multiple of each (see the
            package docstring). Existing topics keep the count they have.
        replication_factor: replicas of the topics this streamer creates.
        client_options: kafka-python settings passed to every client that takes them
            (``security_protocol``, ``sasl_mechanism``, ``ssl_cafile``, ...).
        clock: stamps messages (their timestamp becomes `Event.created_at`); by default
            the clock of the first workflow built on this streamer.
        flush_timeout: seconds the outbox relay's flush waits for the brokers to
            acknowledge a batch before it gives up and sends the batch again later. Raise
            it for brokers slower than that (remote object storage, a loaded machine): a
            flush that always runs out re-sends forever. The relay's actor blocks this
            long at most, which bounds how soon it stops.
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str],
        topic_prefix: str = "",
        *,
        partitions: int = 12,
        replication_factor: int = 1,
        client_options: Mapping[str, Any] | None = None,
        clock: Clock | None = None,
        flush_timeout: float = _FLUSH_TIMEOUT,
    ) -> None:
        if not 1 <= partitions < _MAX_PARTITIONS:
            msg = f"partitions must be between 1 and {_MAX_PARTITIONS - 1}, got {partitions}"
            raise ValueError(msg)
        if replication_factor < 1:
            msg = f"replication_factor must be at least 1, got {replication_factor}"
            raise ValueError(msg)
        if not 0 < flush_timeout < float("inf"):
            msg = f"flush_timeout must be a positive number of seconds, got {flush_timeout!r}"
            raise ValueError(msg)
        self.flush_timeout = flush_timeout
        self.clients = Clients(bootstrap_servers, client_options or {})
        self.topic_prefix = topic_prefix
        self.partitions = partitions
        self.replication_factor = replication_factor
        self._clock = AdapterClock(clock)
        self._lock = threading.Lock()
        self._topics: dict[str, int] = {}  # Kafka topic -> its partition count
        self._warned: set[tuple[str, int]] = set()
        # Set when a flush ran out of time, cleared by one that did not: the senders' close()
        # then waits for nothing more (what they hold is in the outbox still).
        self._undelivered = threading.Event()
        # This process's messages, handed to its own readers once acknowledged (a shorter hop).
        self._local = LocalCopies()

    @property
    def bootstrap_servers(self) -> str:
        """The brokers, comma-separated."""
        return self.clients.servers

    def kafka_topic(self, topic: str) -> str:
        """The Kafka topic an actorflow topic is kept in (the prefix, then the name)."""
        return self.topic_prefix + topic

    def ensure_topic(self, topic: str) -> int:
        """Create the Kafka topic of ``topic`` if missing; its partition count."""
        name = self.kafka_topic(topic)
        with self._lock:
            known = self._topics.get(name)
        if known is not None:
            return known
        count = self.clients.partition_count(name)
        if count is None:
            self.clients.create_topic(name, self.partitions, self.replication_factor)
            count = self.clients.partition_count(name)
        if count is None:
            msg = f"topic {name} was created but the brokers at {self.bootstrap_servers} do not list it"
            raise KafkaError(msg, topic=name)
        if count >= _MAX_PARTITIONS:
            msg = f"topic {name} has {count} partitions; actorflow supports fewer than {_MAX_PARTITIONS}"
            raise KafkaError(msg, topic=name)
        if count != self.partitions:
            logger.warning("topic %s has %d partitions (this streamer creates %d)", name, count, self.partitions)
        with self._lock:
            self._topics[name] = count
        return count

    def use_clock(self, clock: Clock) -> None:
        """Stamp messages with the clock of the workflow built on this streamer (unless given one)."""
        self._clock.lend(clock)

    def new_sender(self, topic: str) -> _Sender:
        """A sender for ``topic`` (creates the topic if missing)."""
        topic_name, partitions = self.kafka_topic(topic), self.ensure_topic(topic)
        return _Sender(
            self.clients, self._undelivered, self._clock, topic_name, partitions, self._local, self.flush_timeout
        )

    def new_receiver(self, topic: str, name: str, options: ReceiverOptions | None = None) -> _Receiver:
        """A receiver of ``topic`` whose offsets are committed under group ``name``.

        Connects at once (to read the committed offsets, or the head for
        ``stream_from_latest``), so an unreachable broker is reported here.
        """
        opts = options or ReceiverOptions()
        count = self.ensure_topic(topic)
        kafka_topic = self.kafka_topic(topic)
        assigned = shard_partitions(count, opts.shard, opts.shard_count)
        shard_filter: tuple[int, int] | None = None
        if assigned is None:
            key = (kafka_topic, opts.shard_count)
            if key not in self._warned:
                self._warned.add(key)
                logger.warning(
                    "topic %s has %d partitions, not a multiple of %d shards: every shard reads every "
                    "partition and filters (make partitions a multiple of parallel_count)",
                    kafka_topic,
                    count,
                    opts.shard_count,
                )
            assigned = list(range(count))
            shard_filter = (opts.shard, opts.shard_count)
        reader = PartitionReader(
            self.clients,
            kafka_topic,
            name,
            assigned,
            from_latest=opts.stream_from_latest,
            max_wait=opts.poll_frequency,
            local=self._local,
        )
        return _Receiver(reader, shard_filter, self._clock)

    def attach(self) -> None:
        """A supervisor starts using this streamer."""
        self.clients.attach()

    def detach(self) -> None:
        """A supervisor stopped; the last one to stop flushes and closes the shared clients."""
        self.clients.detach()

    def close(self) -> None:
        """Flush and close the shared producer and admin client (reopened on next use)."""
        self.clients.close()


class _Sender:
    """Sends to one topic on the streamer's shared producer; ``undelivered`` is set while a flush failed.

    Once a flush returns, what it sent is offered to this process's readers of the topic
    (``local``): with the offsets the broker gave, so they are the messages the broker
    will deliver, only sooner.
    """

    def __init__(
        self,
        clients: Clients,
        undelivered: threading.Event,
        clock: Clock,
        topic: str,
        partitions: int,
        local: LocalCopies,
        flush_timeout: float = _FLUSH_TIMEOUT,
    ) -> None:
        self._clients = clients
        self._flush_timeout = flush_timeout
        self._undelivered = undelivered
        self._clock = clock
        self._topic = topic
        self._partitions = partitions
        self._local = local
        # Each message sent and not flushed: its future, and what a local copy of it needs.
        self._futures: list[tuple[Any, bytes, bytes, tuple[tuple[str, bytes], ...], int]] = []

    def send(self, run_id: str, event_type: int, headers: Mapping[str, str]) -> None:
        key = run_id.encode()
        value = str(int(event_type)).encode()
        encoded = tuple((name, text.encode()) for name, text in headers.items())
        timestamp = _millis(self._clock.now())
        with wrap_exceptions(f"sending to {self._topic}", self._clients.servers):
            future = self._clients.producer(self._topic).send(
                self._topic,
                key=key,
                value=value,
                headers=list(encoded),
                # Our own partitioner (not kafka's murmur2): receivers shard by the same hash.
                partition=shard_hash(run_id) % self._partitions,
                timestamp_ms=timestamp,
            )
        self._futures.append((future, key, value, encoded, timestamp))

    def flush(self) -> None:
        """Wait until every message sent so far is acknowledged by the brokers; raise if one failed.

        Waits the streamer's ``flush_timeout`` (2 s by default) at most: then it raises
        `KafkaError`, and the outbox relay, which deletes its rows only after a flush that
        returned, sends them again later.
        """
        self._wait(self._flush_timeout)

    def _wait(self, timeout: float) -> None:
        futures, self._futures = self._futures, []
        if not futures:
            return
        deadline = time.monotonic() + timeout
        copies: list[Offered] = []
        with wrap_exceptions(f"flushing messages to {self._topic}", self._clients.servers):
            try:
                if timeout > 0:  # send what lingers at once, and wait for it (all of it, or timeout)
                    self._clients.producer(self._topic).flush(timeout=timeout)
                for future, key, value, headers, timestamp in futures:  # done by now, unless the wait ran out
                    sent = future.get(timeout=max(0.0, deadline - time.monotonic()))  # raises the send's error
                    if isinstance(getattr(sent, "offset", None), int) and sent.offset >= 0:
                        copies.append(Offered(self._topic, sent.partition, sent.offset, key, value, headers, timestamp))
            except kafka.errors.KafkaTimeoutError:
                self._undelivered.set()
                raise
        self._undelivered.clear()
        if copies:
            self._local.deliver(self._topic, copies)

    def close(self) -> None:
        """Wait (1 s at most) for what was sent and not flushed; what is not acknowledged is dropped.

        Only messages whose outbox rows were not deleted can be left (the relay deletes
        rows after a flush), so dropping them loses nothing: they are sent again. When a
        flush just ran out of time, close does not wait at all.
        """
        timeout = 0.0 if self._undelivered.is_set() else _CLOSE_TIMEOUT
        try:
            self._wait(timeout)
        except KafkaError as exc:
            logger.warning(
                "%s: closed with messages not acknowledged (the outbox sends them again): %s", self._topic, exc
            )


class _Receiver:
    def __init__(self, reader: PartitionReader, shard_filter: tuple[int, int] | None, clock: Clock) -> None:
        self._reader = reader
        self._shard_filter = shard_filter
        self._clock = clock

    def partitioned(self) -> bool:
        """True when this shard reads only its own partitions (the consumer must not re-filter)."""
        return self._shard_filter is None

    def receive(self, max_events: int, timeout: float) -> Sequence[Event]:
        events: list[Event] = []
        for record in self._reader.poll(max_events, timeout):
            event = self._event(record)
            if self._shard_filter is not None:
                shard, count = self._shard_filter
                if shard_of(event.run_id, count) != shard:
                    continue  # another shard's; acknowledged with the next event handed out
            events.append(event)
        return events

    def _event(self, record: Any) -> Event:
        """The event a message carries, or a malformed event saying why it cannot be read.

        Total: whatever a producer wrote (or a bug in the checks below), this returns an
        event, so one hostile message cannot crash the consumer reading the topic.
        """
        id_ = event_id(record.partition, record.offset)
        created_at = self._created_at(record.timestamp)
        if isinstance(record, Unreadable):  # kafka-python could not decode it (the reader skipped it)
            return Event(id_, "", 0, {}, created_at, malformed=record.reason)
        try:
            return _decode(id_, record, created_at)
        except Exception as exc:  # a hole in the checks: still skip the message, never crash on it
            logger.exception("message at partition %s offset %s cannot be decoded", record.partition, record.offset)
            return Event(id_, "", 0, {}, created_at, malformed=f"unreadable message ({type(exc).__name__})")

    def _created_at(self, timestamp: Any) -> datetime:
        """A message's timestamp (ms) as a datetime; now when it has none, or one no datetime holds."""
        if isinstance(timestamp, int) and 0 <= timestamp <= _MAX_TIMESTAMP_MS:
            try:
                return datetime.fromtimestamp(timestamp / 1000, UTC)
            except (OverflowError, ValueError, OSError):
                pass
        return self._clock.now()

    def ack(self, event: Event) -> None:
        self._reader.ack(*event_position(event.id))

    def wake(self) -> None:
        """Cut a waiting `receive` short (`WakeableReceiver`): the consumer has events handed to it."""
        self._reader.wake()

    def interrupt(self) -> None:
        """Cut a waiting `receive` short (`InterruptibleReceiver`): the node stops."""
        self._reader.wake()

    def close(self) -> None:
        self._reader.close()


def _decode(id_: int, record: Any, created_at: datetime) -> Event:
    """`_Receiver._event`'s checks: the key, then the value, then the headers."""
    key = record.key if record.key is not None else b""
    if not isinstance(key, bytes):
        return Event(id_, "", 0, {}, created_at, malformed="the key (run id) is not bytes")
    try:
        run_id = key.decode()
    except UnicodeDecodeError:
        run_id = key.decode(errors="replace")
        return Event(id_, run_id, 0, {}, created_at, malformed="the key (run id) is not UTF-8")
    if not run_id:
        return Event(id_, run_id, 0, {}, created_at, malformed="no key (run id)")
    if "\x00" in run_id:  # no store can look such an id up (PostgreSQL text refuses NUL)
        return Event(id_, run_id.replace("\x00", "\ufffd"), 0, {}, created_at, malformed="the key (run id) has a NUL")
    value = record.value if record.value is not None else b""
    if not isinstance(value, bytes):
        return Event(id_, run_id, 0, {}, created_at, malformed="the value is not bytes")
    status = _status(value)
    if status is None:
        why = f"the value {_clip(value)} ({len(value)} bytes) is not a decimal status (a signed 64-bit integer)"
        return Event(id_, run_id, 0, {}, created_at, malformed=why)
    headers: dict[str, str] = {}
    for index, header in enumerate(record.headers or ()):
        match header:
            case (str() as name, raw):
                pass
            case _:
                why = f"header {index} is not a (name, value) pair"
                return Event(id_, run_id, status, {}, created_at, malformed=why)
        if raw is not None and not isinstance(raw, bytes):
            return Event(id_, run_id, status, {}, created_at, malformed=f"the value of header {name!r} is not bytes")
        try:
            headers[name] = raw.decode() if raw else ""
        except UnicodeDecodeError:
            return Event(id_, run_id, status, {}, created_at, malformed="a header value is not UTF-8")
    missing = [name for name in _REQUIRED_HEADERS if name not in headers]
    if missing:
        why = f"missing header(s) {', '.join(missing)}"
        return Event(id_, run_id, status, headers, created_at, malformed=why)
    for name in _NUMERIC_HEADERS:
        text = headers.get(name)
        if text is not None and not _number(text):
            why = f"header {name} {_clip(text)} is not a decimal number (a non-negative 64-bit integer)"
            return Event(id_, run_id, status, headers, created_at, malformed=why)
    return Event(id_, run_id, status, headers, created_at)


def _clip(text: bytes | str) -> str:
    """``repr(text)``, cut to `_QUOTED` characters (a log line must not carry a hostile megabyte)."""
    return repr(text[:_QUOTED]) + ("..." if len(text) > _QUOTED else "")


def _status(value: bytes) -> int | None:
    """The status a message value spells (ASCII decimal, signed 64-bit), or None."""
    if not _STATUS.fullmatch(value):
        return None
    status = int(value)  # at most 19 digits: int() cannot refuse it
    return status if _INT64_MIN <= status <= _INT64_MAX else None


def _number(text: str) -> bool:
    """Whether a numeric header holds a non-negative 64-bit integer in ASCII decimal."""
    return _NUMBER.fullmatch(text) is not None and int(text) <= _INT64_MAX
