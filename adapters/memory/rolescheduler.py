"""`MemoryRoleScheduler`: roles held by nodes of this process."""

from __future__ import annotations

import threading
import time

from actorflow.protocols import Lease

__all__ = ["MemoryRoleScheduler"]


class MemoryRoleScheduler:
    """Gives each role to at most one node id at a time, within this process.

    Args:
        ttl: when set, a lease lasts ``ttl`` seconds unless renewed (to test failover);
            by default a role is held until released.
    """

    def __init__(self, *, ttl: float | None = None) -> None:
        self._lock = threading.Lock()
        self._ttl = ttl
        self._holders: dict[str, tuple[str, float]] = {}

    def acquire(self, role: str, node_id: str) -> Lease | None:
        """Take or renew ``role`` for ``node_id``; ``None`` if another node holds it."""
        now = time.monotonic()
        with self._lock:
            holder = self._holders.get(role)
            if holder is not None and holder[0] != node_id and holder[1] > now:
                return None
            expires = float("inf") if self._ttl is None else now + self._ttl
            self._holders[role] = (node_id, expires)
        return Lease(role, node_id, self._ttl)

    def release(self, role: str, node_id: str) -> None:
        """Give ``role`` up if ``node_id`` holds it."""
        with self._lock:
            holder = self._holders.get(role)
            if holder is not None and holder[0] == node_id:
                del self._holders[role]

    def holder(self, role: str) -> str | None:
        """The node id holding ``role`` now, if any."""
        with self._lock:
            holder = self._holders.get(role)
            if holder is None or holder[1] <= time.monotonic():
                return None
            return holder[0]
