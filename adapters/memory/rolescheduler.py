"""`MemoryRoleScheduler`: roles held by nodes of this process."""

from __future__ import annotations

import threading
import time

from actorflow.options import duration
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
        self._ttl = None if ttl is None else duration("ttl", ttl, positive=True)
        self._holders: dict[str, tuple[str, float, int]] = {}  # role -> (node, expires, term)

    def acquire(self, role: str, node_id: str) -> Lease | None:
        """Take or renew ``role`` for ``node_id``; ``None`` if another node holds it.

        The term grows when the role passes to another node (a released role keeps its
        term, so the next holder's is higher still).
        """
        now = time.monotonic()
        with self._lock:
            holder = self._holders.get(role)
            if holder is not None and holder[0] != node_id and holder[1] > now:
                return None
            term = 1 if holder is None else holder[2] + (holder[0] != node_id)
            expires = float("inf") if self._ttl is None else now + self._ttl
            self._holders[role] = (node_id, expires, term)
        return Lease(role, node_id, self._ttl, term)

    def release(self, role: str, node_id: str) -> None:
        """Give ``role`` up if ``node_id`` holds it (its term is kept for the next holder to exceed)."""
        with self._lock:
            holder = self._holders.get(role)
            if holder is not None and holder[0] == node_id:
                self._holders[role] = (node_id, float("-inf"), holder[2])

    def holder(self, role: str) -> str | None:
        """The node id holding ``role`` now, if any."""
        with self._lock:
            holder = self._holders.get(role)
            if holder is None or holder[1] <= time.monotonic():
                return None
            return holder[0]
