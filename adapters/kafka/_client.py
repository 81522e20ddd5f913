"""The kafka-python clients one adapter shares: settings, the admin and producer, errors.

kafka-python 3 runs each client's network I/O on a thread of its own, so clients are
opened lazily (constructing an adapter connects nothing and starts no thread), shared
where the client is thread-safe (the admin and the producer), and closed when the last
supervisor detaches.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import kafka
import kafka.errors
import kafka.record.util
from kafka.structs import TopicPartition

from actorflow.errors import ActorflowError

from .._lifecycle import Shared

__all__ = ["Clients", "KafkaError", "wrap_exceptions"]

logger = logging.getLogger("actorflow.kafka")

T = TypeVar("T")

# No call the adapter makes from a process's actor blocks for longer than about this
# (seconds): a supervisor's stop() has 5 s to end every actor, even while the brokers
# are away. A call that runs out of time raises `KafkaError`; what it was doing is
# redone later (the outbox keeps its rows, the offsets stay where they were).
BLOCK_TIMEOUT = 2.0
_BLOCK_MS = int(BLOCK_TIMEOUT * 1000)
# A producer's close waits this long (seconds) for what it still holds, then drops it.
_CLOSE_TIMEOUT = 1.0


_PRUNE_AT = 32  # sockets a client's selector remembers before it forgets the closed ones


class _ClosingSelector(selectors.DefaultSelector):
    """The selector of one kafka-python client's event loop: closing it closes the client's sockets.

    kafka-python 3 can drop a connection's socket without closing it when the client
    closes: ``close()`` closes the connections from the caller's thread while the I/O
    thread still runs, and a connection that has a request still waiting in its write
    buffer (a fetch or metadata request sent a moment before) leaves its socket to the
    write task; the loop is then stopped and that task cancelled, and the socket is only
    garbage-collected (a ResourceWarning). A connection being opened when the loop stops
    is dropped the same way. Every socket the loop waits on is registered here, and the
    loop closes its selector last: the sockets still open then are closed with it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sockets_lock = threading.Lock()
        self._sockets: set[socket.socket] = set()  # every socket registered and maybe still open

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = super().register(fileobj, events, data)
        if isinstance(fileobj, socket.socket):
            with self._sockets_lock:
                if len(self._sockets) >= _PRUNE_AT:  # forget the sockets closed since (reconnections)
                    self._sockets = {sock for sock in self._sockets if sock.fileno() != -1}
                self._sockets.add(fileobj)
        return key

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        """The base's, without the file object's repr in the `KeyError`.

        kafka-python registers a socket by asking for its key first, and a miss is its
        usual case (every wait for a read): the base formats ``repr(socket)`` into each
        miss (two system calls), about a tenth of a Kafka node's CPU.
        """
        if self.get_map() is None:
            msg = "Selector is closed"
            raise RuntimeError(msg)
        # The standard selectors' own lookup (typeshed does not list these members).
        fd = self._fileobj_lookup(fileobj)  # type: ignore[attr-defined]
        key: selectors.SelectorKey | None = self._fd_to_key.get(fd)  # type: ignore[attr-defined]
        if key is None:
            raise KeyError(fileobj)
        return key

    def close(self) -> None:
        super().close()
        with self._sockets_lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()  # a no-op for one closed already


# Settings every client gets unless ``client_options`` says otherwise.
_COMMON: dict[str, Any] = {
    # Closes the sockets kafka-python leaves open when a client closes (see the class).
    "selector": _ClosingSelector,
    "client_id": "actorflow",
    # An unreachable broker is reported within seconds instead of kafka-python's 30 s.
    "bootstrap_timeout_ms": _BLOCK_MS,
    # After a broker restart, reconnect within about 2 s rather than backing off to 30 s.
    "reconnect_backoff_max_ms": 2000,
}
_ADMIN: dict[str, Any] = {
    # Each admin request (describe, create a topic, read a group's offsets) waits this
    # long at most; kafka-python's default is 30 s.
    "request_timeout_ms": _BLOCK_MS,
}
_CONSUMER: dict[str, Any] = {
    "enable_auto_commit": False,  # offsets are committed by ack(), after the effect is stored
    "auto_offset_reset": "earliest",
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
}
_PRODUCER: dict[str, Any] = {
    "acks": "all",
    # Not idempotent: delivery is at least once by design (a duplicate is absorbed by the
    # record's version, and a run's next event is only sent after its last one was read),
    # and with it on, Tansu 0.6 acknowledged and then dropped messages sent after it restarted.
    "enable_idempotence": False,
    "linger_ms": 5,  # batch what a tick sends (flush() waits for the acknowledgements)
    "max_block_ms": 1000,  # send() waits this long at most for metadata or buffer space
    "request_timeout_ms": 10_000,
    "delivery_timeout_ms": 30_000,  # kafka-python wants it above linger_ms + request_timeout_ms
}
_ADMIN_ATTEMPTS = 3
_CLASSES = (kafka.KafkaAdminClient, kafka.KafkaProducer, kafka.KafkaConsumer)


class KafkaError(ActorflowError):
    """A Kafka operation failed (kafka-python's error is the cause)."""


KafkaError.__module__ = "actorflow.adapters.kafka"  # where users import it from


@contextlib.contextmanager
def wrap_exceptions(what: str, servers: str) -> Iterator[None]:
    """Turn kafka-python errors into `KafkaError` naming the brokers, keeping the cause."""
    try:
        yield
    except ActorflowError:
        raise
    except kafka.errors.KafkaError as exc:
        msg = f"{what} on Kafka at {servers}: {type(exc).__name__}: {exc}"
        raise KafkaError(msg, servers=servers) from exc


# Settings the adapter depends on, which ``client_options`` may not change: why, by key.
_RESERVED: dict[str, str] = {
    "bootstrap_servers": "give the brokers as the first argument",
    "group_id": "a receiver commits its offsets under its own name (the role's), which is the group id",
    "enable_auto_commit": "offsets are committed by ack(), once the events' effects are stored (at least once)",
    "key_serializer": "messages are in the original's wire format (key = the run id's bytes)",
    "value_serializer": "messages are in the original's wire format (value = the status as a decimal string)",
    "key_deserializer": "receivers and translators read the raw key bytes",
    "value_deserializer": "receivers and translators read the raw value bytes (a translator may decode them)",
    "partitioner": "a run's events go to partition crc32(run id) % partitions, which sharding depends on",
    "transactional_id": "sends are acknowledged by flush(), outside transactions",
    "kafka_client": "the adapter builds the network clients itself",
    "selector": "the adapter's selector closes the sockets a client leaves open when it closes",
}
# Settings whose value the adapter depends on: the values allowed, and why.
_FIXED: dict[str, tuple[tuple[Any, ...], str]] = {
    "acks": (("all", -1), "the outbox rows are deleted once every replica acknowledged their messages"),
    "auto_offset_reset": (
        ("earliest",),
        "an offset the brokers no longer hold must resume at the oldest message, not skip to the head",
    ),
}


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``client_options`` as a dict, refusing unknown keys and settings the adapter depends on."""
    known = set().union(*(cls.DEFAULT_CONFIG for cls in _CLASSES))
    unknown = sorted(set(options) - known - set(_RESERVED))
    if unknown:
        msg = f"client_options: kafka-python takes no option {', '.join(unknown)} (see KafkaConsumer/KafkaProducer)"
        raise ValueError(msg)
    reserved = sorted(set(options) & set(_RESERVED))
    if reserved:
        why = "; ".join(f"{key}: {_RESERVED[key]}" for key in reserved)
        msg = f"client_options may not set {', '.join(reserved)} ({why})"
        raise ValueError(msg)
    for key, (allowed, why) in _FIXED.items():
        if key in options and options[key] not in allowed:
            msg = f"client_options: {key} must be {' or '.join(map(repr, allowed))}, not {options[key]!r} ({why})"
            raise ValueError(msg)
    return dict(options)


def _construct(cls: Any, config: dict[str, Any]) -> Any:
    """``cls(**config)``, releasing its network client when the constructor fails.

    kafka-python builds its network client (sockets, and for some clients an I/O
    thread) before bootstrapping; when the bootstrap or a setting check fails, the
    half-built client is unreachable and keeps them. Its ``kafka_client`` factory is
    wrapped so that what it built can be closed on the way out.
    """
    made: list[Any] = []
    factory = cls.DEFAULT_CONFIG["kafka_client"]

    def build(**kwargs: Any) -> Any:
        made.append(factory(**kwargs))
        return made[-1]

    try:
        return cls(**config, kafka_client=build)
    except BaseException:
        for net in made:
            with contextlib.suppress(Exception):
                net.close()
        raise


def _address(server: str) -> tuple[str, int]:
    host, sep, port = server.strip().rpartition(":")
    if not sep or not port.isdigit():
        return server.strip().strip("[]"), 9092
    return host.strip("[]"), int(port)


def probe(servers: str, timeout: float) -> None:
    """Raise `KafkaError` unless a TCP connection to one of ``servers`` opens within ``timeout``.

    kafka-python retries an unreachable bootstrap server until its timeout and leaves a
    socket behind per attempt; this check answers "nothing listens there" at once.
    """
    errors: list[str] = []
    for server in servers.split(","):
        try:
            with socket.create_connection(_address(server), timeout=timeout):
                return
        except OSError as exc:
            errors.append(f"{server.strip()}: {exc}")
    msg = f"no Kafka broker reachable at {servers} ({'; '.join(errors)})"
    raise KafkaError(msg, servers=servers)


def _track_topic(producer: Any, topic: str) -> None:
    """Have the producer keep ``topic`` in every metadata refresh.

    kafka-python 3.0.12 adds a topic to the set it refreshes only when it sends to a topic
    whose partitions it does not know yet. A topic it learnt from a refresh that listed
    every topic is left out of the set, so the next refresh for another topic forgets
    its leaders; the sender thread then spins at full CPU asking for metadata that never
    names it. Registering each topic we send to, through the sender's own thread-safe
    queue, avoids that.
    """
    sender = getattr(producer, "_sender", None)
    add_topic = getattr(sender, "add_topic", None)
    if callable(add_topic):
        add_topic(topic)


def _close_producer(producer: Any) -> None:
    """Close ``producer`` within about 2 x `_CLOSE_TIMEOUT`, dropping what the brokers did not acknowledge.

    kafka-python's ``close(timeout)`` flushes first and raises when that times out (the
    brokers are away), leaving its I/O thread running. Whatever it still holds was sent
    by an outbox relay that has not deleted those rows (it deletes only what a flush saw
    acknowledged), so it is dropped: the I/O thread is closed forcefully, and joined.
    """
    try:
        producer.close(timeout=_CLOSE_TIMEOUT)
    except kafka.errors.KafkaTimeoutError:
        logger.warning("closing the Kafka producer: messages not acknowledged in time are dropped (resent later)")
    else:
        return
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
        sender.join(_CLOSE_TIMEOUT)
    producer.close(timeout=0)


@functools.cache
def warn_if_slow_checksums() -> bool:
    """Warn (once a process) when kafka-python computes CRC-32C in pure Python; True if it does.

    Every batch produced and fetched is checksummed: without the native ``crc32c`` package
    (``actorflow[kafka]`` brings it) that took 14% of a Kafka node's interpreter time
    in a backlog, and cost a quarter of its throughput.
    """
    if getattr(kafka.record.util, "crc32c_c", True) is not None:
        return False
    logger.warning(
        "kafka-python is computing CRC-32C in pure Python (the crc32c package is missing): "
        "a Kafka node spends much of its CPU on checksums; pip install 'actorflow[kafka]' brings it"
    )
    return True


class Clients(Shared):
    """Settings and the shared clients of one adapter (one set of brokers)."""

    def __init__(self, bootstrap_servers: str | list[str], options: Mapping[str, Any]) -> None:
        super().__init__()
        self.servers = bootstrap_servers if isinstance(bootstrap_servers, str) else ",".join(bootstrap_servers)
        if not self.servers.strip():
            msg = "bootstrap_servers must name at least one broker, e.g. 'localhost:9092'"
            raise ValueError(msg)
        self.options = check_options(options)
        warn_if_slow_checksums()
        # Built in __init__ so that every thread sees one lock (nothing is connected yet).
        self._lock = threading.Lock()
        self._admin_lock = threading.RLock()
        self._admin: Any = None
        self._producer: Any = None
        self._producer_topics: set[str] = set()

    def open(self) -> None:
        """Check now that a broker answers: an unreachable one fails here, with its address."""
        self._check_reachable()

    def _check_reachable(self) -> None:
        """Raise at once when nothing listens at the brokers' addresses (a client is about to be built).

        kafka-python would retry for ``bootstrap_timeout_ms`` before failing.
        """
        timeout = self.config(kafka.KafkaConsumer, {})["bootstrap_timeout_ms"] / 1000
        probe(self.servers, timeout)

    def config(self, cls: Any, defaults: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
        """The settings of one client: our defaults, then overrides, then the user's options."""
        merged = {**_COMMON, **defaults, **overrides, **self.options}
        merged["bootstrap_servers"] = self.servers.split(",")
        return {key: value for key, value in merged.items() if key in cls.DEFAULT_CONFIG}

    def admin(self) -> Any:
        """The shared admin client (opened on first use)."""
        with self._lock:
            if self._admin is None:
                self._check_reachable()
                with wrap_exceptions("connecting the admin client", self.servers):
                    self._admin = _construct(kafka.KafkaAdminClient, self.config(kafka.KafkaAdminClient, _ADMIN))
            return self._admin

    def producer(self, topic: str) -> Any:
        """The shared producer (thread-safe; opened on first use), ready to send to ``topic``."""
        with self._lock:
            if self._producer is None:
                self._check_reachable()
                with wrap_exceptions("connecting the producer", self.servers):
                    self._producer = _construct(kafka.KafkaProducer, self.config(kafka.KafkaProducer, _PRODUCER))
                self._producer_topics = set()
            producer = self._producer
            if topic not in self._producer_topics:
                self._producer_topics.add(topic)
                _track_topic(producer, topic)
            return producer

    def consumer(self, **overrides: Any) -> Any:
        """A new consumer (one per reader: kafka-python consumers are not thread-safe)."""
        self._check_reachable()
        with wrap_exceptions("connecting a consumer", self.servers):
            return _construct(kafka.KafkaConsumer, self.config(kafka.KafkaConsumer, _CONSUMER, **overrides))

    def _admin_call(self, what: str, call: Callable[[Any], T]) -> T:
        """``call(admin)``, one admin request at a time, retried twice on a quick transient error.

        kafka-python 3's admin client fails requests made from several threads at once
        ("No node_id provided"), and admin requests are rare (a topic or a reader being
        set up), so they are serialised. A retry starts only within `BLOCK_TIMEOUT` of the
        first attempt, so that an unanswered request is not waited for three times.
        """
        started = time.monotonic()
        with self._admin_lock, wrap_exceptions(what, self.servers):
            for attempt in range(_ADMIN_ATTEMPTS):
                try:
                    return call(self.admin())
                except kafka.errors.KafkaError as exc:
                    late = time.monotonic() - started >= BLOCK_TIMEOUT / 2
                    if not exc.retriable or late or attempt == _ADMIN_ATTEMPTS - 1:
                        raise
                    time.sleep(0.1 * (attempt + 1))  # back off before the retry
            raise AssertionError  # pragma: no cover - the loop returns or raises

    def partition_count(self, topic: str) -> int | None:
        """How many partitions ``topic`` has; None when it does not exist."""
        (found,) = self._admin_call(f"describing topic {topic}", lambda admin: admin.describe_topics([topic]))
        if found["error_code"] != 0 or not found["partitions"]:
            return None
        return len(found["partitions"])

    def create_topic(self, topic: str, partitions: int, replication_factor: int) -> None:
        """Create ``topic`` unless it exists."""
        spec = {topic: {"num_partitions": partitions, "replication_factor": replication_factor}}

        def create(admin: Any) -> None:
            with contextlib.suppress(kafka.errors.TopicAlreadyExistsError):  # another node created it first
                admin.create_topics(spec)

        self._admin_call(f"creating topic {topic}", create)

    def committed(self, group: str, partitions: list[TopicPartition]) -> dict[int, int]:
        """The offsets ``group`` committed, by partition (partitions without one left out)."""
        found = self._admin_call(
            f"reading the offsets of group {group}",
            lambda admin: admin.list_group_offsets({group: partitions}).get(group, {}),
        )
        return {tp.partition: meta.offset for tp, meta in found.items() if meta.offset is not None and meta.offset >= 0}

    def close(self) -> None:
        """Flush and close the producer and close the admin (both reopen on next use)."""
        with self._lock:
            producer, self._producer = self._producer, None
            admin, self._admin = self._admin, None
        if producer is not None:
            with wrap_exceptions("closing the producer", self.servers):
                _close_producer(producer)
        if admin is not None:
            with wrap_exceptions("closing the admin client", self.servers):
                admin.close()
