"""The LISTEN thread: wakes waiting receivers when a commit announces new events.

Writers ``pg_notify`` the channel in their own transaction (so the notification arrives
only after the commit). An event notice names its topic and the shard hashes of the runs
it is about (`event_notice`): a sharded receiver waits on its own shard's key, so a commit
wakes only the shards that have something new, not every shard of the topic. Waiters
take the current version of a key *before* they query, then wait for it to change: a
notification between their query and their wait is never lost. While the connection is
down, waiters simply time out and query again (polling is the fallback), and the thread
reconnects with back-off. An outage logs one line when the connection is lost (repeated
failures are counted, `actorflow._lograte.Streak`) and one when it is back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

import psycopg

from actorflow._lograte import Streak
from actorflow._redact import redact

from .._sql.wakeups import Wakeups

__all__ = ["Listener", "event_notice", "shard_key"]

logger = logging.getLogger("actorflow.postgres")

_NOTIFY_POLL = 0.25  # how often the thread looks at its stop flag while idle
_MAX_BACKOFF = 5.0
# More hashes than this in one notice: name none (every shard of the topic looks; a notice
# must stay under PostgreSQL's 8,000-byte payload limit).
_MOST_HASHES = 500


def event_notice(key: str, hashes: Iterable[int]) -> str:
    """The payload announcing new events under ``key`` (``e:<topic>``) for runs of these shard hashes."""
    unique = set(hashes)
    if not unique or len(unique) > _MOST_HASHES:
        return key
    return key + "|" + ",".join(map(str, sorted(unique)))


def shard_key(key: str, shard: int, count: int) -> str:
    """The key a receiver of shard ``shard`` of ``count`` waits on (see `Listener.watch_shards`)."""
    return f"{key}#{shard}/{count}"


class Listener:
    """Counts notifications per payload and wakes the threads waiting for one."""

    def __init__(self, conninfo: str, channel: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        # A counter and a condition per key (`Wakeups`): a notification wakes the waiters of
        # its keys only (one condition for all woke every receiver of the database on each,
        # about 9% of a busy node's interpreter). A (re)connection bumps every key.
        self._wakeups = Wakeups()
        self._lock = threading.Lock()  # guards _shard_counts (held while a notice's keys are bumped)
        self._shard_counts: dict[str, set[int]] = {}  # key -> the shard counts its receivers use
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._outage = Streak(logger)  # failed connections since it last worked: logged once
        self._thread = threading.Thread(target=self._run, name=f"actorflow-listen-{channel}", daemon=True)
        self._thread.start()

    def version(self, key: str) -> int:
        """How many notifications ``key`` has had, plus the (re)connections (take it before querying).

        Both only grow, so the sum changes whenever either does: a reconnection wakes the
        waiters of every key, also of keys never notified before.
        """
        return self._wakeups.counter(key)

    def watch_shards(self, key: str, count: int) -> None:
        """Keep `shard_key` versions of ``key`` for ``count`` shards (before taking one's version)."""
        with self._lock:
            self._shard_counts.setdefault(key, set()).add(count)

    def wait(self, key: str, seen: int, timeout: float, stop: Callable[[], bool] | None = None) -> None:
        """Block until ``key`` is notified after ``seen`` was taken, ``stop()`` is true, or ``timeout`` seconds."""
        self._wakeups.wait(key, seen, timeout, lambda: self._stop.is_set() or (stop is not None and stop()))

    def poke(self, key: str) -> None:
        """Count a notification of ``key`` made in this process: its waiters return (a spurious wake-up)."""
        self._wakeups.bump((key,))

    def nudge(self, key: str) -> None:
        """Wake ``key``'s waiters so they check their ``stop`` again (their version unmoved)."""
        self._wakeups.nudge(key)

    def wake(self) -> None:
        """Wake every waiter so it checks its ``stop`` again."""
        self._wakeups.wake()

    def _bump(self, payload: str | None) -> None:
        if payload is None:  # (re)connected: something may have been missed; wake everyone
            self._wakeups.bump_all()
            return
        key, _, listed = payload.partition("|")
        changed = [key]
        with self._lock:
            counts = self._shard_counts.get(key)
            if counts:
                try:
                    hashes = [int(h) for h in listed.split(",")] if listed else None
                except ValueError:
                    hashes = None  # not ours to read: every shard looks
                for count in counts:
                    shards = range(count) if hashes is None else {h % count for h in hashes}
                    changed.extend(shard_key(key, shard, count) for shard in shards)
            self._wakeups.bump(changed)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(self._channel)))
                    self.connected.set()
                    self._bump(None)
                    backoff = 0.1
                    ended = self._outage.recovered()
                    if ended is not None:
                        logger.warning(
                            "LISTEN connection on %s back after %d failed attempt(s) in %.1fs",
                            self._channel,
                            *ended,
                        )
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=_NOTIFY_POLL):
                            self._bump(note.payload)
            except psycopg.Error as exc:
                self.connected.clear()
                if self._stop.is_set():
                    break
                self._outage.failed(
                    type(exc).__name__,
                    "LISTEN connection on %s lost (%s); reconnecting with back-off (further failures counted)",
                    self._channel,
                    redact(str(exc)),
                )
                self._bump(None)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
        self.connected.clear()

    def stop(self) -> None:
        """Stop the thread and close its connection."""
        self._stop.set()
        self._wakeups.wake()
        self._thread.join(5.0)
