"""Resources shared by the supervisors that use an adapter: released when the last one stops."""

from __future__ import annotations

import abc
import threading

__all__ = ["Shared"]


class Shared(abc.ABC):
    """Counts the supervisors attached to a holder of connections or threads.

    `Supervisor.start` attaches and `Supervisor.stop` detaches; when the last user
    detaches, `close` releases everything (the holder reopens lazily if used again).
    Attaching also checks the server can be reached (`open`), so a wrong address
    fails the supervisor's start with the reason instead of surfacing later as crashes.
    """

    def __init__(self) -> None:
        self._users = 0
        self._users_lock = threading.Lock()

    def attach(self) -> None:
        """One more supervisor uses this; raises when the server cannot be reached."""
        self.open()
        with self._users_lock:
            self._users += 1

    def detach(self) -> None:
        """One supervisor fewer; at none, `close`."""
        with self._users_lock:
            self._users = max(0, self._users - 1)
            idle = self._users == 0
        if idle:
            self.close()

    @abc.abstractmethod
    def open(self) -> None:
        """Connect now (idempotent), raising the adapter's error when it cannot."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release every connection and thread."""
