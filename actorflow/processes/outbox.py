"""The outbox relay: publishes the events stores wrote beside their records, then deletes them.

It reads a batch oldest-first, sends each event to its topic (one run's events stay in
order), flushes the senders, and only then deletes the rows: a crash in between re-sends
rows, which consumers absorb by version. A store that can wake the relay
(`OutboxWaiter`) is waited on; others are polled.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from actorflow.capabilities import InterruptibleOutboxWaiter
from actorflow.errors import ActorflowError
from actorflow.processes.base import Process

if TYPE_CHECKING:
    from actorflow.engine import Engine
    from actorflow.event import OutboxEvent
    from actorflow.metrics import ProcessMetrics
    from actorflow.options import OutboxOptions, ResolvedOptions
    from actorflow.protocols import EventSender

__all__ = ["OutboxRelay"]


class OutboxRelay(Process):
    """One per workflow (role ``<workflow>-outbox-consumer``)."""

    def __init__(
        self,
        engine: Engine[Any, Any],
        name: str,
        role: str,
        options: ResolvedOptions,
        metrics: ProcessMetrics,
        outbox: OutboxOptions,
    ) -> None:
        super().__init__(engine, name, role, options, metrics)
        self.outbox = outbox
        self._senders: dict[str, EventSender] = {}

    def stop(self) -> None:
        """Close every sender."""
        senders, self._senders = self._senders, {}
        for sender in senders.values():
            sender.close()

    def _drop_senders(self) -> None:
        """Forget the senders after a failure (they may hold unsent events; the rows stay)."""
        senders, self._senders = self._senders, {}
        for sender in senders.values():
            try:
                sender.close()
            except Exception:
                self.log.debug("%s: closing a sender after a failure failed", self.name, exc_info=True)

    def wake(self) -> None:
        """Cut the tick short, the store's wait for outbox events too when it can be (`InterruptibleOutboxWaiter`).

        A wake just before the wait begins is not seen by it: that wait ends at its budget.
        """
        super().wake()
        waiter = self.engine.capabilities.outbox_waiter
        if isinstance(waiter, InterruptibleOutboxWaiter):
            waiter.interrupt_outbox_wait(self.engine.name)

    def tick(self, budget: float) -> None:
        """Relay one batch, or wait for one."""
        if self.backing_off(budget):
            return
        store = self.engine.record_store
        rows = store.list_outbox_events(self.engine.name, self.outbox.lookup_limit)
        if not rows:
            if self._woken.is_set():
                return  # the node stops: no wait (`wake`)
            waiter = self.engine.capabilities.outbox_waiter
            if waiter is not None:
                waiter.wait_for_outbox(self.engine.name, budget)
            elif self._woken.wait(min(budget, self.outbox.polling_frequency)):
                self._woken.clear()
            return
        started = time.perf_counter()
        try:
            self._relay(rows)
        except ActorflowError as exc:
            # The streamer or the store is unreachable (an adapter error): as the original,
            # wait the outbox's err_backoff and relay the same rows again; nothing was
            # deleted that was not acknowledged. Other errors crash the actor (restarted).
            self.log.warning("%s/%s: relaying the outbox failed: %s", self.engine.name, self.name, exc)
            self.metrics.error()
            self._drop_senders()
            self.back_off(self.outbox.err_backoff)
            return
        now = self.engine.clock.now()
        age = (now - rows[0].created_at).total_seconds()
        self.metrics.lag.set(age)
        if self.outbox.lag_alert > 0:
            self.metrics.lag_alert.set(1 if age > self.outbox.lag_alert else 0)
        self.metrics.latency.observe((time.perf_counter() - started) / len(rows))

    def _relay(self, rows: Sequence[OutboxEvent]) -> None:
        """Send ``rows``, wait until every one is acknowledged, then delete them."""
        store = self.engine.record_store
        used: dict[str, EventSender] = {}
        for row in rows:
            sender = self._senders.get(row.topic)
            if sender is None:
                sender = self.engine.event_streamer.new_sender(row.topic)
                self._senders[row.topic] = sender
            sender.send(row.run_id, row.type, row.headers)
            used[row.topic] = sender
        for sender in used.values():
            sender.flush()
        batch = self.engine.capabilities.batch_store
        if batch is not None:
            batch.delete_outbox_events(row.id for row in rows)
        else:
            for row in rows:
                store.delete_outbox_event(row.id)
