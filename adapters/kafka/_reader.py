"""`PartitionReader`: one consumer on assigned partitions of a topic, with a committed cursor.

Partitions are assigned, not balanced by a consumer group: actorflow's role scheduler
already decides which node holds each shard, so a group rebalance would only add delay
(joins take seconds) and could hand a shard's partitions to the wrong node. The group
id (the receiver's name) is used only to keep committed offsets.

`LocalCopies` shortens a hop inside one process: a message this process's producer has
just had acknowledged is handed straight to this process's readers of its partition, with
the offset the broker gave it, instead of waiting for the broker to answer their fetch
(5-7.5 ms on the test broker). The broker's own copy is dropped when it comes: the reader
hands out each offset of a partition once, in order, whichever way it came first.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from typing import Any

from kafka.errors import CorruptRecordError
from kafka.structs import OffsetAndMetadata, TopicPartition

from ._client import BLOCK_TIMEOUT, Clients, KafkaError, wrap_exceptions

__all__ = ["LocalCopies", "Offered", "PartitionReader", "Unreadable", "shard_partitions"]

logger = logging.getLogger("actorflow.kafka")

# Each blocking call is bounded (see BLOCK_TIMEOUT): one that runs out of time raises, and
# what was not committed is read again.
_BLOCK_MS = int(BLOCK_TIMEOUT * 1000)
_HEAD_TIMEOUT = BLOCK_TIMEOUT  # seconds to find where each partition ends, for stream_from_latest
_COMMIT_TIMEOUT_MS = _BLOCK_MS
_CLOSE_TIMEOUT_MS = 1000
_MAX_FETCH_WAIT_MS = 100
# What kafka-python raises, inside poll, on a message it cannot decode (a header name that
# is not UTF-8, a record failing its CRC). Its fetcher is then stuck on that message: the
# next poll loops on it for ever at full CPU, so the consumer is made again past it.
_UNDECODABLE = (CorruptRecordError, UnicodeDecodeError)
# A kafka-python poll cannot be woken (and costs about 0.4 ms of CPU): a reader that local
# copies or wakes reached in the last `_WARM_FOR` seconds asks the broker at least every
# `_BROKER_EVERY` without waiting and waits on its own signal in between (see `_fetch`).
_BROKER_EVERY = 0.01
_WARM_FOR = 1.0
# Offsets handed out from local copies whose broker copy has not come yet (it is dropped
# when it does). Past this many the oldest are forgotten: its broker copy then comes
# again, a duplicate the consumer skips by its record version.
_LOCAL_LIMIT = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class Unreadable:
    """A message kafka-python could not decode, handed out in its place (then acknowledged like any other).

    It has a message's attributes (no key, value, headers or timestamp), and ``reason``.
    """

    topic: str
    partition: int
    offset: int
    reason: str
    key: None = None
    value: None = None
    headers: tuple[()] = ()
    timestamp: None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Offered:
    """A message as this process's producer sent it, with where the broker put it (see `LocalCopies`)."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int


class LocalCopies:
    """Hands the messages this process sent to this process's readers of their partitions.

    One per streamer: its senders call `deliver` once the broker acknowledged a flush
    (so each message has its final offset), its readers `register` while open.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers: dict[str, tuple[PartitionReader, ...]] = {}

    def register(self, topic: str, reader: PartitionReader) -> None:
        """``reader`` (of ``topic``) receives the copies from now on."""
        with self._lock:
            self._readers[topic] = (*self._readers.get(topic, ()), reader)

    def unregister(self, topic: str, reader: PartitionReader) -> None:
        """``reader`` receives no more copies."""
        with self._lock:
            left = tuple(r for r in self._readers.get(topic, ()) if r is not reader)
            if left:
                self._readers[topic] = left
            else:
                self._readers.pop(topic, None)

    def deliver(self, topic: str, messages: list[Offered]) -> None:
        """Offer ``messages`` (acknowledged by the broker, in send order) to the readers of ``topic``."""
        for reader in self._readers.get(topic, ()):
            reader.offer(messages)


def shard_partitions(partitions: int, shard: int, shard_count: int) -> list[int] | None:
    """The partitions shard ``shard`` of ``shard_count`` owns, or None if they cannot be split.

    When a topic's partition count is a multiple of the shard count, and every message
    sits on partition ``crc32(key) % partitions``, then ``p % shard_count`` equals
    ``crc32(key) % shard_count`` (`actorflow.event.shard_of`) for every message on ``p``:
    the shard's events are exactly those on its partitions.
    """
    if shard_count <= 1:
        return list(range(partitions))
    if partitions % shard_count:
        return None
    return [p for p in range(partitions) if p % shard_count == shard]


class PartitionReader:
    """Reads assigned partitions from the group's committed offsets; commits on `ack`.

    Args:
        clients: the adapter's clients.
        topic: the Kafka topic.
        group: the group id the committed offsets are kept under.
        partitions: the partitions to read.
        from_latest: where a partition without a committed offset starts: at its head
            (the head is committed at once, so a reader made again later resumes there),
            else at its beginning.
        max_wait: how long the broker may hold a fetch that has nothing to return (at
            most 0.1 s, unless ``client_options`` sets ``fetch_max_wait_ms``).
        local: where this process's own messages to ``topic`` are offered to it as soon
            as the broker acknowledged them (see `LocalCopies`); ``None``: none are.
    """

    def __init__(
        self,
        clients: Clients,
        topic: str,
        group: str,
        partitions: list[int],
        *,
        from_latest: bool = False,
        max_wait: float = 0.5,
        local: LocalCopies | None = None,
    ) -> None:
        self._clients = clients
        self._servers = clients.servers
        self._group = group
        self._tps = {p: TopicPartition(topic, p) for p in partitions}
        # Offsets of the records handed out and not yet acknowledged, in delivery order.
        self._delivered: collections.deque[tuple[int, int]] = collections.deque()
        self._committed: dict[int, int] = {}
        # Per partition, the offset after the last record handed out (where a consumer made
        # again resumes).
        self._next: dict[int, int] = {}
        # Local copies offered (any thread appends; the reading thread takes them), the
        # offsets handed out from them whose broker copy is still to come (-> key), and
        # until when the reader is warm (see `_fetch`).
        self._inbox: collections.deque[Offered] = collections.deque()
        self._handed_locally: dict[tuple[int, int], bytes] = {}
        self._warm_until = 0.0
        self._signal = threading.Event()  # set by `offer` and `wake`: a warm reader's wait ends
        self._woken = False  # set by `wake`: the next `poll` returns even with nothing to hand out
        self._polled_at = 0.0  # when the broker was last asked
        self._trust_offsets = True
        # Apache Kafka answers a waiting fetch as soon as a message arrives; Tansu 0.6, with
        # several readers waiting, often lets it run to its end. Capping the wait at 100 ms
        # keeps a hop's latency low on both, at the cost of ten empty fetches a second per
        # idle reader (client_options may raise it).
        self._wait_ms = max(10, min(_MAX_FETCH_WAIT_MS, int(max_wait * 1000)))
        self._consumer = clients.consumer(group_id=group, fetch_max_wait_ms=self._wait_ms)
        try:
            self._start(from_latest=from_latest)
        except BaseException:
            self._consumer.close(autocommit=False)
            raise
        self._topic = topic
        self._local = local
        if local is not None:
            local.register(topic, self)

    def _start(self, *, from_latest: bool) -> None:
        consumer = self._consumer
        tps = list(self._tps.values())
        with wrap_exceptions(f"assigning {self._tps_text()}", self._servers):
            consumer.assign(tps)
            self._committed = self._clients.committed(self._group, tps)
            fresh = [tp for tp in tps if tp.partition not in self._committed]
            if fresh and from_latest:
                heads = self._heads(fresh)
                self._commit(heads)
            for tp in tps:
                if tp.partition in self._committed:
                    consumer.seek(tp, self._committed[tp.partition])
                else:
                    consumer.seek_to_beginning(tp)

    def _heads(self, tps: list[TopicPartition]) -> dict[int, int]:
        """Where each partition ends now: the offset the next message will get.

        ``end_offsets()`` is exact on Apache Kafka, but some Kafka-protocol brokers (Tansu
        0.6) answer with the last *batch's* base offset + 1, short of the end. The high
        watermark a fetch returns is exact on both, so fetch from one before the reported
        end (which returns at once when the partition has data) and read it.
        """
        consumer = self._consumer
        ends = consumer.end_offsets(tps, timeout_ms=_BLOCK_MS)
        for tp in tps:
            consumer.seek(tp, max(ends.get(tp, 0) - 1, 0))
        deadline = time.monotonic() + _HEAD_TIMEOUT
        while any(consumer.highwater(tp) is None for tp in tps) and time.monotonic() < deadline:
            consumer.poll(timeout_ms=100, max_records=1)
        heads: dict[int, int] = {}
        for tp in tps:
            highwater = consumer.highwater(tp)
            if highwater is None:
                logger.warning("no high watermark for %s within %ss; using end_offsets()", tp, _HEAD_TIMEOUT)
            heads[tp.partition] = max(highwater or 0, ends.get(tp, 0))
        return heads

    def _tps_text(self) -> str:
        parts = ",".join(str(p) for p in self._tps)
        topic = next(iter(self._tps.values())).topic if self._tps else "?"
        return f"{topic}[{parts}] for {self._group}"

    def poll(self, max_records: int, timeout: float) -> list[Any]:
        """Up to ``max_records`` records after those handed out; waits ``timeout`` at most.

        Records of one partition come in offset order, each offset once (a local copy or
        the broker's, whichever came first). Every record returned must be acknowledged
        (through `ack`) before the cursor can move past it.

        A message kafka-python cannot decode comes as an `Unreadable` in its place: the
        consumer is made again past it, and the reading goes on after it.
        """
        records = self._take_offered(max_records)
        if not records:
            records = self._fetch(max_records, timeout)
        self._delivered.extend((record.partition, record.offset) for record in records)
        for record in records:
            self._next[record.partition] = record.offset + 1
        return records

    def _fetch(self, max_records: int, timeout: float) -> list[Any]:
        """The broker's next records, or local copies (or a `wake`) while waiting for them.

        A kafka-python poll cannot be cut short, so a warm reader (one that local copies or
        wakes reached in the last `_WARM_FOR` seconds) does not wait inside it: it asks the
        broker without waiting, then waits on its own signal, which `offer` and `wake` set,
        for `_BROKER_EVERY` at most. A cold reader waits inside one poll, burning nothing.
        """
        deadline = time.monotonic() + timeout
        signal = self._signal
        while True:
            signal.clear()  # what set it is looked at below
            now = time.monotonic()
            woken = self._woken
            if woken:
                self._woken = False
                if now - self._polled_at < _BROKER_EVERY:
                    # The caller has events of its own to take: back to it (the broker was just asked).
                    return self._take_offered(max_records)
            remaining = deadline - now
            warm = now < self._warm_until
            records = self._take_offered(max_records) or self._read(
                max_records, 0.0 if warm or woken else max(0.0, remaining)
            )
            self._polled_at = time.monotonic()
            if records:
                return records
            records = self._take_offered(max_records)
            if records or woken or not warm or remaining <= 0:
                return records
            signal.wait(min(remaining, _BROKER_EVERY))

    def wake(self) -> None:
        """Make a waiting `poll` return soon (empty if nothing came), and keep the reader warm (any thread)."""
        self._woken = True
        self._rouse()

    def _rouse(self) -> None:
        """End a warm reader's wait, and keep it warm for `_WARM_FOR` (any thread)."""
        self._warm_until = time.monotonic() + _WARM_FOR
        self._signal.set()

    def _read(self, max_records: int, wait: float) -> list[Any]:
        with wrap_exceptions(f"reading {self._tps_text()}", self._servers):
            try:
                batches = self._consumer.poll(timeout_ms=max(0, int(wait * 1000)), max_records=max_records)
                records: list[Any] = [record for batch in batches.values() for record in batch]
            except _UNDECODABLE as exc:
                return [self._skip_undecodable(exc)]
        if self._handed_locally:
            records = [record for record in records if not self._came_locally(record)]
        return records

    def _came_locally(self, record: Any) -> bool:
        """True for the broker's copy of an offset handed out already from a local copy (then dropped)."""
        key = self._handed_locally.pop((record.partition, record.offset), None)
        if key is None:
            return False
        if key == record.key:
            return True
        # The offset the producer was told is not where the message is: never trust them again.
        self._trust_offsets = False
        logger.error(
            "%s: partition %s offset %s holds another message than the broker acknowledged there; "
            "local copies are no longer used by this reader",
            self._tps_text(),
            record.partition,
            record.offset,
        )
        return False

    def offer(self, messages: list[Offered]) -> None:
        """Local copies of messages just acknowledged by the broker (any thread may call this)."""
        mine = [message for message in messages if message.partition in self._tps]
        if mine:
            self._inbox.extend(mine)
            self._rouse()

    def _take_offered(self, max_records: int) -> list[Any]:
        """The local copies that are next on their partition (the others the broker delivers)."""
        inbox = self._inbox
        taken: list[Any] = []
        while inbox and len(taken) < max_records:
            message = inbox.popleft()
            if not self._trust_offsets or message.offset != self._resume(message.partition):
                continue
            self._next[message.partition] = message.offset + 1
            self._handed_locally[(message.partition, message.offset)] = message.key
            taken.append(message)
        excess = len(self._handed_locally) - _LOCAL_LIMIT
        for _ in range(max(0, excess)):
            del self._handed_locally[next(iter(self._handed_locally))]
        return taken

    def _skip_undecodable(self, error: Exception) -> Unreadable:
        """The message ``error`` was raised on, skipped: a new consumer resumes after it.

        kafka-python does not say which message it was: its fetcher's partition in hand
        and the offset it was to read next do (read from its internals; if they are not
        there, `KafkaError` is raised, and the reader, made again, meets the message again).
        """
        part = getattr(getattr(self._consumer, "_fetcher", None), "_next_partition_records", None)
        tp: Any = getattr(part, "topic_partition", None)
        offset: Any = getattr(part, "next_fetch_offset", None)
        if tp is None or self._tps.get(tp.partition) != tp or not isinstance(offset, int):
            self._reopen(skip=None)
            msg = f"reading {self._tps_text()} on Kafka at {self._servers}: undecodable message: {error!r}"
            raise KafkaError(msg, servers=self._servers) from error
        reason = f"unreadable message ({type(error).__name__}: {_clip(str(error))})"
        resume = self._resume(tp.partition)
        if resume is not None and offset < resume:
            # Skipped already: kafka-python decodes a record batch from its start, so the
            # messages after an undecodable one in its batch cannot be read either.
            reason = f"unreadable message: in the record batch of an undecodable one at offset {offset}"
            offset = resume
        self._reopen(skip=(tp.partition, offset))
        logger.error(
            "%s: message at partition %s offset %s skipped: %s", self._tps_text(), tp.partition, offset, reason
        )
        return Unreadable(tp.topic, tp.partition, offset, reason)

    def _resume(self, partition: int) -> int | None:
        """Where reading ``partition`` goes on: after what was handed out, else the committed offset."""
        return self._next.get(partition, self._committed.get(partition))

    def _reopen(self, skip: tuple[int, int] | None) -> None:
        """Replace the consumer by a new one where this reader is (past ``skip``'s offset on its partition)."""
        old, self._consumer = (
            self._consumer,
            self._clients.consumer(group_id=self._group, fetch_max_wait_ms=self._wait_ms),
        )
        try:
            old.close(autocommit=False, timeout_ms=_CLOSE_TIMEOUT_MS)
        except Exception:  # the old consumer is dropped either way
            logger.warning("%s: closing the stuck consumer failed", self._tps_text(), exc_info=True)
        if skip is not None:
            self._next[skip[0]] = skip[1] + 1
        self._handed_locally.clear()  # the new consumer starts past them: their broker copies never come
        self._consumer.assign(list(self._tps.values()))
        for partition, tp in self._tps.items():
            resume = self._resume(partition)
            if resume is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, resume)

    def ack(self, partition: int, offset: int) -> None:
        """Commit past (partition, offset) and every record handed out before it, one commit.

        A commit that fails (or runs out of time: the brokers are away) raises `KafkaError`
        and the records stay unacknowledged: acknowledging again retries, and a reader made
        again reads them from the last committed offset.
        """
        if (partition, offset) not in self._delivered:
            return  # already acknowledged, or never handed out by this reader
        upto: dict[int, int] = {}
        count = 0
        for done in self._delivered:
            count += 1
            upto[done[0]] = max(upto.get(done[0], 0), done[1] + 1)
            if done == (partition, offset):
                break
        self._commit(upto)
        for _ in range(count):
            self._delivered.popleft()

    def _commit(self, offsets: dict[int, int]) -> None:
        moved = {p: o for p, o in offsets.items() if o > self._committed.get(p, -1)}
        if not moved:
            return
        commit = {self._tps[p]: OffsetAndMetadata(o, "", -1) for p, o in moved.items()}
        with wrap_exceptions(f"committing offsets of {self._tps_text()}", self._servers):
            self._consumer.commit(commit, timeout_ms=_COMMIT_TIMEOUT_MS)
        self._committed.update(moved)

    def close(self) -> None:
        """Close the consumer; what was handed out and not acknowledged comes again next time."""
        if self._local is not None:
            self._local.unregister(self._topic, self)
        self._next.clear()
        self._delivered.clear()
        self._inbox.clear()
        self._handed_locally.clear()
        with wrap_exceptions(f"closing the consumer of {self._tps_text()}", self._servers):
            self._consumer.close(autocommit=False, timeout_ms=_CLOSE_TIMEOUT_MS)


def _clip(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters (a log line must not carry a hostile megabyte)."""
    return text if len(text) <= limit else text[:limit] + "..."
