"""`SqliteRoleScheduler`: role leases in a SQLite file, shared by the node processes of one host."""

from __future__ import annotations

import builtins
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from actorflow.capabilities import FleetView, NodeInfo
from actorflow.options import duration
from actorflow.protocols import Lease, new_node_id

from .._sql.fleet import fleet_view, node_infos
from ._db import FILE_MODE, LeaseKeeper, from_micros

__all__ = ["SqliteRoleScheduler"]

_MICROS = 1_000_000
_FLEET = "fleet"  # the hub key bumped when this process changes the fleet
_SIDECAR = "-fleet"  # next to the file, as SQLite's -wal and -shm: touched when any process changes the fleet


class SqliteRoleScheduler(LeaseKeeper):
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
        file_mode: the permissions of a database file this adapter creates (default 0o600,
            owner only; ``None``: SQLite's default under the umask); an existing file keeps its own.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        node_id: str | None = None,
        ttl: float = 3.0,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
        file_mode: int | None = FILE_MODE,
    ) -> None:
        ttl = duration("ttl", ttl, positive=True)
        super().__init__(path, synchronous=synchronous, busy_timeout=busy_timeout, file_mode=file_mode)
        self.node_id = node_id or new_node_id()
        self.ttl = ttl
        self._sidecar = Path(self.db.path + _SIDECAR)

    def _changed(self) -> None:
        """Tell the fleet's nodes it changed: this process's at once, the others' within a tick.

        SQLite has no NOTIFY; a commit is seen by other processes only when they query.
        Touching a file next to the database is: `fleet_changes` reads its time with one
        ``stat`` (no database work), so another process's node heartbeats within its next
        scheduler tick (0.2 s) instead of its next interval (a third of the ttl).
        """
        self.db.hub.bump((_FLEET,))
        try:
            self._sidecar.touch()
            os.utime(self._sidecar, ns=(now := time.time_ns(), now))  # touch() may keep a coarse time
        except OSError:
            pass  # a read-only folder: the others notice at their next heartbeat

    def acquire(self, role: str, node_id: str) -> Lease | None:
        """Take or renew ``role`` for ``node_id``; ``None`` while another node's lease is live."""
        params = {"role": role, "node": node_id, "ttl": round(self.ttl * _MICROS)}
        row = self.db.write(lambda conn: conn.execute(self._q["acquire_role"], params).fetchone())
        return None if row is None else Lease(role, node_id, self.ttl, int(row[0]))

    def release(self, role: str, node_id: str) -> None:
        """Give ``role`` up if ``node_id`` holds it; the other nodes of this process are woken at once."""
        self.db.write(lambda conn: conn.execute(self._q["release_role"], (role, node_id)).close())
        self._changed()

    def holders(self) -> dict[str, tuple[str, int]]:
        """Every role held now: its node id and term."""
        return {role: (node, int(term)) for role, node, term in self.db.fetch(self._q["role_holders"])}

    # -- membership (actorflow.capabilities.Membership) ----------------------------------

    def _now(self, conn: sqlite3.Connection) -> int:
        """SQLite's clock in microseconds: read once per transaction, so all of it agrees."""
        return int(conn.execute(self._q["clock"]).fetchone()[0])

    def join(self, node_id: str, roles: Sequence[str]) -> None:
        """Register ``node_id`` as live, able to work ``roles``; drop nodes away for an hour."""
        q, ttl = self._q, round(self.ttl * _MICROS)

        def work(conn: sqlite3.Connection) -> None:
            now = self._now(conn)
            conn.execute(q["join_node"], {"node": node_id, "now": now, "ttl": ttl})
            conn.execute(q["clear_node_roles"], (node_id,))
            conn.executemany(q["add_node_role"], [(node_id, role) for role in roles])
            conn.execute(q["forget_dead_nodes"], {"now": now})
            conn.execute(q["forget_dead_node_rows"], {"now": now})

        self.db.write(work)
        self._changed()

    def heartbeat(self, node_id: str) -> FleetView:
        """Renew the node and all its leases in one transaction; the fleet as it is now."""
        q, ttl = self._q, round(self.ttl * _MICROS)

        def work(conn: sqlite3.Connection) -> FleetView:
            now = self._now(conn)
            params = {"node": node_id, "now": now, "ttl": ttl}
            joined = conn.execute(q["renew_node"], params).rowcount == 1
            leases = conn.execute(q["renew_node_leases"], params).fetchall() if joined else []
            return fleet_view(
                joined=joined,
                leases=leases,
                candidates=conn.execute(q["role_candidates"], {"now": now}).fetchall(),
                holders=conn.execute(q["live_holders"], {"now": now}).fetchall(),
                ttl=self.ttl,
            )

        view: FleetView = self.db.write(work, sync=False)  # lost to a power cut: only a renewal to make again
        return view

    def leave(self, node_id: str) -> None:
        """Release every lease of ``node_id`` and drop it from the live nodes, in one transaction."""
        q = self._q

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(q["release_node_leases"], {"node": node_id, "now": self._now(conn)})
            conn.execute(q["drop_node"], (node_id,))
            conn.execute(q["clear_node_roles"], (node_id,))

        self.db.write(work)
        self._changed()

    def fleet_changes(self) -> int:
        """Moves when a node of any process on the file released a role, left or joined (one ``stat``)."""
        try:
            touched = self._sidecar.stat().st_mtime_ns
        except OSError:
            touched = 0
        return self.db.hub.counter(_FLEET) + touched

    def nodes(self) -> builtins.list[NodeInfo]:
        """The live nodes, by id, with the roles each holds now."""
        with self.db.snapshot() as conn:
            rows = conn.execute(self._q["live_nodes"], {"now": self._now(conn)}).fetchall()
        return node_infos(rows, from_micros)
