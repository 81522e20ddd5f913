"""Connectors: consume an external stream and hand each event to the user's function."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from actorflow.capabilities import PartitionedReceiver
from actorflow.event import ConnectorEvent, connector_key, shard_of
from actorflow.processes.base import Process
from actorflow.processes.consumer import BATCH_SIZE
from actorflow.protocols import ConnectorConsumer, ReceiverOptions

if TYPE_CHECKING:
    from actorflow.specs import ConnectorSpec

__all__ = ["ConnectorProcess", "connector_key"]


class ConnectorProcess(Process):
    """One shard of a connector (role ``<name>-connector-to-<workflow>-consumer-<i>-of-<n>``).

    An event whose function raises is retried after the back-off, holding its place;
    connector errors never pause runs (there may be no run yet).
    """

    def __init__(self, *args: Any, spec: ConnectorSpec[Any, Any], shard: int, shard_count: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spec = spec
        self.shard = shard
        self.shard_count = shard_count
        self._consumer: ConnectorConsumer | None = None
        self._pending: list[ConnectorEvent] = []
        self._refilter = True

    def start(self) -> None:
        """Make the consumer for this shard."""
        options = ReceiverOptions(
            poll_frequency=self.options.polling_frequency, shard=self.shard, shard_count=self.shard_count
        )
        consumer = self.spec.constructor.make(self.role, options)
        # A partitioned consumer's share is its partitions (see `PartitionedReceiver`).
        self._refilter = not (isinstance(consumer, PartitionedReceiver) and consumer.partitioned())
        self._consumer = consumer

    def stop(self) -> None:
        """Close the consumer."""
        self._pending = []
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()

    def tick(self, budget: float) -> None:
        """Handle the next batch of external events."""
        consumer = self._consumer
        if consumer is None or self.backing_off(budget):
            return
        if self._pending:
            events, self._pending = self._pending, []
        else:
            events = list(consumer.receive(BATCH_SIZE, budget))
        done: ConnectorEvent | None = None
        lag = timedelta(seconds=self.options.lag)
        for index, event in enumerate(events):
            if not self.holding():
                self._pending = events  # nothing acknowledged: redo them if the lease comes back
                return
            if lag and event.created_at is not None and event.created_at + lag > self.engine.clock.now():
                self._pending = events[index:]
                self.engine.clock.wait_until(event.created_at + lag, timeout=budget)
                break
            if not self._handle(event):
                self._pending = events[index:]
                self.back_off(self.options.err_backoff)
                break
            done = event
        if done is not None:
            consumer.ack(done)

    def _handle(self, event: ConnectorEvent) -> bool:
        if event.malformed:
            self.metrics.malformed.inc()
            self.metrics.skipped("malformed event")
            self.log.error("%s: malformed connector event %s skipped: %s", self.name, event.id, event.malformed)
            return True
        if self.shard_count > 1 and self._refilter and shard_of(connector_key(event), self.shard_count) != self.shard:
            self.metrics.skipped("filtered out")
            return True
        if event.created_at is not None:
            self.observe_lag((self.engine.clock.now() - event.created_at).total_seconds())
        started = time.perf_counter()
        try:
            self.spec.fn(self.engine.api, event)
        except Exception as exc:  # noqa: BLE001 - a user connector function failed: retry
            self.log.warning("%s/%s: connector event %s failed: %s", self.engine.name, self.name, event.id, exc)
            self.metrics.error()
            return False
        self.metrics.latency.observe(time.perf_counter() - started)
        return True
