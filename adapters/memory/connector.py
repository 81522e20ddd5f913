"""`MemoryConnector`: a connector over events given in memory (and added later)."""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from actorflow.event import ConnectorEvent
from actorflow.protocols import ReceiverOptions

__all__ = ["MemoryConnector"]


class MemoryConnector:
    """A `ConnectorConstructor` over an in-memory list of events with per-name cursors."""

    def __init__(self, events: Iterable[ConnectorEvent] = ()) -> None:
        self._cond = threading.Condition()
        self._events: list[ConnectorEvent] = list(events)
        self._cursors: dict[str, int] = {}

    def add(self, *events: ConnectorEvent) -> None:
        """Append events; waiting consumers wake at once."""
        with self._cond:
            self._events.extend(events)
            self._cond.notify_all()

    def make(self, name: str, options: ReceiverOptions) -> _Consumer:  # noqa: ARG002 - the core filters shards
        """A consumer with its cursor kept under ``name``."""
        with self._cond:
            position = self._cursors.get(name, 0)
        return _Consumer(self._receive, functools.partial(self._ack, name), self._wake, name, position)

    def _receive(self, consumer: _Consumer, max_events: int, timeout: float) -> list[ConnectorEvent]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while consumer.position >= len(self._events):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or consumer.closed:
                    return []
                self._cond.wait(remaining)
            start = consumer.position
            out = self._events[start : start + max_events]
            consumer.position += len(out)
            consumer.delivered.extend((event, start + i + 1) for i, event in enumerate(out))
            return out

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _ack(self, name: str, position: int) -> None:
        with self._cond:
            self._cursors[name] = max(position, self._cursors.get(name, 0))


class _Consumer:
    """One name's cursor over the connector's events (the connector's methods handed in, bound)."""

    def __init__(
        self,
        receive: Callable[[_Consumer, int, float], list[ConnectorEvent]],
        ack: Callable[[int], None],
        wake: Callable[[], None],
        name: str,
        position: int,
    ) -> None:
        self._receive = receive
        self._ack = ack
        self._wake = wake
        self.name = name
        self.position = position
        self.delivered: deque[tuple[ConnectorEvent, int]] = deque()
        self.closed = False

    def receive(self, max_events: int, timeout: float) -> Sequence[ConnectorEvent]:
        return self._receive(self, max_events, timeout)

    def ack(self, event: ConnectorEvent) -> None:
        while self.delivered:
            delivered, position = self.delivered.popleft()
            if delivered == event:
                self._ack(position)
                return

    def close(self) -> None:
        self.closed = True
        self._wake()  # a receive blocked in another thread returns
