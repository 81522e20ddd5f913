"""`PartitionReader`: one consumer on assigned partitions of a topic, with a committed cursor.

Partitions are assigned, not balanced by a consumer group: actorflow's role scheduler
already decides which node holds each shard, so a group rebalance would only add delay
(joins take seconds) and could hand a shard's partitions to the wrong node. The group
id (the receiver's name) is used only to keep committed offsets.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any

from kafka.structs import OffsetAndMetadata, TopicPartition

from ._client import BLOCK_TIMEOUT, Clients, wrap_exceptions

__all__ = ["PartitionReader", "shard_partitions"]

logger = logging.getLogger("actorflow.kafka")

# Each blocking call is bounded (see BLOCK_TIMEOUT): one that runs out of time raises, and
# what was not committed is read again.
_BLOCK_MS = int(BLOCK_TIMEOUT * 1000)
_HEAD_TIMEOUT = BLOCK_TIMEOUT  # seconds to find where each partition ends, for stream_from_latest
_COMMIT_TIMEOUT_MS = _BLOCK_MS
_CLOSE_TIMEOUT_MS = 1000
_MAX_FETCH_WAIT_MS = 100


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
    ) -> None:
        self._clients = clients
        self._servers = clients.servers
        self._group = group
        self._tps = {p: TopicPartition(topic, p) for p in partitions}
        # Offsets of the records handed out and not yet acknowledged, in delivery order.
        self._delivered: collections.deque[tuple[int, int]] = collections.deque()
        self._committed: dict[int, int] = {}
        # Apache Kafka answers a waiting fetch as soon as a message arrives; Tansu 0.6, with
        # several readers waiting, often lets it run to its end. Capping the wait at 100 ms
        # keeps a hop's latency low on both, at the cost of ten empty fetches a second per
        # idle reader (client_options may raise it).
        wait_ms = max(10, min(_MAX_FETCH_WAIT_MS, int(max_wait * 1000)))
        self._consumer = clients.consumer(group_id=group, fetch_max_wait_ms=wait_ms)
        try:
            self._start(from_latest=from_latest)
        except BaseException:
            self._consumer.close(autocommit=False)
            raise

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

        Records of one partition come in offset order. Every record returned must be
        acknowledged (through `ack`) before the cursor can move past it.
        """
        with wrap_exceptions(f"reading {self._tps_text()}", self._servers):
            batches = self._consumer.poll(timeout_ms=max(0, int(timeout * 1000)), max_records=max_records)
        records = [record for batch in batches.values() for record in batch]
        self._delivered.extend((record.partition, record.offset) for record in records)
        return records

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
        self._delivered.clear()
        with wrap_exceptions(f"closing the consumer of {self._tps_text()}", self._servers):
            self._consumer.close(autocommit=False, timeout_ms=_CLOSE_TIMEOUT_MS)
