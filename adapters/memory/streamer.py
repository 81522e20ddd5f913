"""`MemoryEventStreamer`: topics as in-process lists; receivers wake the moment an event lands."""

from __future__ import annotations

import array
import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from actorflow.clock import AdapterClock, Clock
from actorflow.event import Event, Header, shard_hash
from actorflow.protocols import ReceiverOptions

__all__ = ["MemoryEventStreamer"]

# The headers the engine's events carry, in this order: their values are kept as a tuple.
_KEYS = (Header.WORKFLOW_NAME, Header.FOREIGN_ID, Header.TOPIC, Header.RUN_ID, Header.RUN_STATE, Header.RECORD_VERSION)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


_RUN_ID_AT = _KEYS.index(Header.RUN_ID)


class _Other:
    """An event whose headers are not the engine's (or name another run): kept as given."""

    __slots__ = ("headers", "run_id")

    def __init__(self, run_id: str, headers: dict[str, str]) -> None:
        self.run_id = run_id
        self.headers = headers


class _Topic:
    """One topic's events, kept compact (a tuple each; an `Event` is made when one is read).

    A topic holds every event ever sent to it, so a run's events cost what they hold and
    little more: the engine's header values as a tuple (the core shares the strings that
    repeat: topic, workflow, run state, version; the run id is among them), the type,
    the time and the hash in arrays (no object each).
    """

    __slots__ = ("cond", "hashes", "rows", "times", "types")

    def __init__(self) -> None:
        self.rows: list[tuple[str, ...] | _Other] = []  # the engine's header values, or an `_Other`
        self.types = array.array("q")  # each event's type
        self.times = array.array("q")  # created_at, microseconds since the epoch
        self.hashes = array.array("L")  # crc32 of each event's run id, for shard filtering
        self.cond = threading.Condition(threading.Lock())

    def append(self, run_id: str, event_type: int, headers: Mapping[str, str], micros: int, digest: int) -> None:
        """Keep one event (under ``cond``)."""
        values = tuple(headers.values()) if tuple(headers) == _KEYS else None
        if values is None or values[_RUN_ID_AT] != run_id:
            self.rows.append(_Other(run_id, dict(headers)))
        else:
            self.rows.append(values)
        self.types.append(event_type)
        self.times.append(micros)
        self.hashes.append(digest)

    def event(self, position: int) -> Event:
        """The event at 0-based ``position``."""
        row = self.rows[position]
        if isinstance(row, _Other):
            run_id, headers = row.run_id, dict(row.headers)
        else:
            run_id, headers = row[_RUN_ID_AT], dict(zip(_KEYS, row, strict=True))
        return Event(position + 1, run_id, self.types[position], headers, _EPOCH + self.times[position] * _MICRO)


class MemoryEventStreamer:
    """An event streamer in this process's memory.

    Each topic is an append-only list; event ids are 1-based positions in their topic.
    Cursors are kept per receiver name, so a receiver re-created under the same name
    resumes after its last acknowledged event. Receivers block on a condition and wake
    as soon as an event is appended (no busy polling). Shard options are honoured.

    Args:
        clock: stamps ``created_at`` on events; by default the clock of the first workflow
            built on this streamer.
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = AdapterClock(clock)
        self._lock = threading.Lock()
        self._topics: dict[str, _Topic] = {}
        self._cursors: dict[tuple[str, str], int] = {}

    def _topic(self, name: str) -> _Topic:
        with self._lock:
            found = self._topics.get(name)
            if found is None:
                found = self._topics[name] = _Topic()
            return found

    def use_clock(self, clock: Clock) -> None:
        """Stamp events with the clock of the workflow built on this streamer (unless given one)."""
        self._clock.lend(clock)

    def new_sender(self, topic: str) -> _Sender:
        """A sender for ``topic``."""
        return _Sender(functools.partial(self.publish, topic))

    def new_receiver(self, topic: str, name: str, options: ReceiverOptions | None = None) -> _Receiver:
        """A receiver of ``topic`` with its cursor kept under ``name``."""
        opts = options or ReceiverOptions()
        log = self._topic(topic)
        key = (topic, name)
        with self._lock:
            if key not in self._cursors and opts.stream_from_latest:
                with log.cond:
                    self._cursors[key] = len(log.rows)
            position = self._cursors.get(key, 0)
        return _Receiver(log, functools.partial(self._commit, key), position, opts)

    def publish(self, topic: str, run_id: str, event_type: int, headers: Mapping[str, str]) -> None:
        """Append an event to ``topic`` (what a sender does; a `MemoryRecordStore` that publishes directly too)."""
        log = self._topic(topic)
        micros = (self._clock.now() - _EPOCH) // _MICRO
        digest = shard_hash(run_id)
        with log.cond:
            log.append(run_id, int(event_type), headers, micros, digest)
            log.cond.notify_all()

    def _commit(self, key: tuple[str, str], position: int) -> None:
        with self._lock:
            if position > self._cursors.get(key, 0):
                self._cursors[key] = position

    def events(self, topic: str) -> list[Event]:
        """Every event ever sent to ``topic`` (for tests and debugging)."""
        log = self._topic(topic)
        with log.cond:
            return [log.event(i) for i in range(len(log.rows))]


class _Sender:
    """Appends to one topic through the streamer's ``append`` (bound to the topic)."""

    def __init__(self, append: Callable[[str, int, Mapping[str, str]], None]) -> None:
        self._append = append

    def send(self, run_id: str, event_type: int, headers: Mapping[str, str]) -> None:
        self._append(run_id, event_type, headers)

    def flush(self) -> None:
        """Every send is immediately visible: nothing to flush."""

    def close(self) -> None:
        """Nothing to release."""


class _Receiver:
    """Reads one topic's list from ``position``; ``commit`` keeps its cursor in the streamer."""

    def __init__(self, log: _Topic, commit: Callable[[int], None], position: int, options: ReceiverOptions) -> None:
        self._log = log
        self._commit = commit
        self._position = position
        self._shard = options.shard
        self._count = options.shard_count if options.shard_count > 1 else 0
        self._closed = False
        self._interrupted = False

    def receive(self, max_events: int, timeout: float) -> Sequence[Event]:
        log = self._log
        deadline = time.monotonic() + timeout
        out: list[Event] = []
        with log.cond:
            while not self._closed:
                hashes = log.hashes
                position, end = self._position, len(hashes)
                count, shard = self._count, self._shard
                while position < end and len(out) < max_events:
                    if not count or hashes[position] % count == shard:
                        out.append(log.event(position))
                    position += 1
                self._position = position
                if out or self._interrupted:
                    self._interrupted = False
                    return out
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return out
                log.cond.wait(remaining)
        return out

    def interrupt(self) -> None:
        """Make the current or next waiting `receive` return soon (`InterruptibleReceiver`)."""
        with self._log.cond:
            self._interrupted = True
            self._log.cond.notify_all()

    def ack(self, event: Event) -> None:
        self._commit(event.id)

    def close(self) -> None:
        with self._log.cond:
            self._closed = True
            self._log.cond.notify_all()  # a receive blocked in another thread returns
