"""`SqliteRoleScheduler`: role leases in a SQLite file, shared by the node processes of one host."""

from __future__ import annotations

import os

from actorflow.protocols import Lease, new_node_id

from ._db import SqliteAdapter

__all__ = ["SqliteRoleScheduler"]

_MICROS = 1_000_000


class SqliteRoleScheduler(SqliteAdapter):
    """Gives each role to at most one node process at a time, through a lease table in the file.

    For several node processes on one host sharing one file (a second core for a
    GIL-bound node). A lease lasts ``ttl`` seconds by SQLite's clock, the host's, which
    every process on it shares; another process may take the role only once the lease
    has run out or its holder released it. Each lease carries a term that grows whenever
    the role passes to another node (fencing).

    Args:
        path: the database file (shared with the other SQLite adapters).
        node_id: this process's node id (default: host, pid and a short random part).
        ttl: seconds a lease lasts unless renewed.
        synchronous: SQLite's ``synchronous`` setting (a lease lost to a power cut is
            only a lease to take again: ``NORMAL`` would do, ``FULL`` is the default of
            every SQLite adapter).
        busy_timeout: seconds to wait for the write lock held by another process.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        node_id: str | None = None,
        ttl: float = 3.0,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
    ) -> None:
        if not ttl > 0:
            msg = f"ttl must be a positive number of seconds, got {ttl!r}"
            raise ValueError(msg)
        super().__init__(path, synchronous=synchronous, busy_timeout=busy_timeout)
        self.node_id = node_id or new_node_id()
        self.ttl = float(ttl)

    def acquire(self, role: str, node_id: str) -> Lease | None:
        """Take or renew ``role`` for ``node_id``; ``None`` while another node's lease is live."""
        params = {"role": role, "node": node_id, "ttl": round(self.ttl * _MICROS)}
        row = self.db.write(lambda conn: conn.execute(self._q["acquire_role"], params).fetchone())
        return None if row is None else Lease(role, node_id, self.ttl, int(row[0]))

    def release(self, role: str, node_id: str) -> None:
        """Give ``role`` up if ``node_id`` holds it; another node may take it at once."""
        self.db.write(lambda conn: conn.execute(self._q["release_role"], (role, node_id)).close())

    def holders(self) -> dict[str, tuple[str, int]]:
        """Every role held now: its node id and term."""
        return {role: (node, int(term)) for role, node, term in self.db.fetch(self._q["role_holders"])}
