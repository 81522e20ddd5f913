"""In-process wake-ups for the MySQL adapters: a commit of this process wakes its own waiters at once.

MySQL has no LISTEN/NOTIFY: a commit bumps its keys' counters in this process (see
`actorflow.adapters._sql.wakeups`); other processes' writes are not seen here, so
waiters also poll, with back-off, up to their poll interval. One `Wakeups` per database
(server, port, database) per process, shared by every adapter made for it.
"""

from __future__ import annotations

from collections.abc import Hashable

from .._sql.wakeups import PerProcess, Wakeups

__all__ = ["Wakeups", "wakeups_for"]

_all = PerProcess(Wakeups)


def wakeups_for(identity: Hashable) -> Wakeups:
    """The wake-ups of the database ``identity`` (server, port, database), made on first use."""
    return _all.get(identity)
