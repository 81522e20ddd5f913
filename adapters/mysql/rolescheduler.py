"""`MysqlRoleScheduler`: role leases in MySQL/MariaDB, shared by every node of a fleet."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import pymysql  # type: ignore[import-untyped,unused-ignore]

from actorflow.capabilities import FleetView, NodeInfo
from actorflow.options import duration
from actorflow.protocols import Lease, new_node_id

from .._sql.fleet import fleet_view, node_infos
from ._db import QUERIES, LeaseKeeper, from_db, transaction

__all__ = ["MysqlRoleScheduler"]

_DUPLICATE = 1062


class MysqlRoleScheduler(LeaseKeeper):
    """Gives each role to at most one node of the fleet at a time, through a lease table.

    A lease lasts ``ttl`` seconds by the database's clock (``NOW(6)``, never a node's:
    clocks of different hosts disagree) unless its holder renews it; another node may
    take the role only once it has run out, or its holder released it. Each lease
    carries a term that grows whenever the role passes to another node, so a node that
    was frozen or cut off and wakes up late can be refused (fencing: the other MySQL
    adapters on the same database check the lease in their write's transaction). It
    also keeps the fleet's membership (`Membership`: join, heartbeat, leave, nodes).

    Args:
        dsn: ``mysql://user[:password]@host[:port]/database``.
        node_id: this process's node id for the fleet (default: host, pid and a short
            random part, see `actorflow.protocols.new_node_id`).
        ttl: seconds a lease lasts unless renewed: the longest a dead node's roles stay
            unworked.
        max_connections: the pool's size.
    """

    def __init__(self, dsn: str, *, node_id: str | None = None, ttl: float = 3.0, max_connections: int = 2) -> None:
        ttl = duration("ttl", ttl, positive=True)
        super().__init__(dsn, max_connections=max_connections)
        self.node_id = node_id or new_node_id()
        self.ttl = ttl
        self._micros = max(1, round(ttl * 1_000_000))

    def acquire(self, role: str, node_id: str) -> Lease | None:
        """Take or renew ``role`` for ``node_id``; ``None`` while another node's lease is live."""

        def work(conn: Any) -> int | None:
            try:
                with transaction(conn) as cur:
                    cur.execute(QUERIES["lock_lease"], (role,))
                    row = cur.fetchone()
                    if row is None:
                        cur.execute(QUERIES["insert_lease"], (role, node_id, self._micros))
                        return 1
                    holder, term, live = row[0], int(row[1]), bool(row[2])
                    if holder != node_id:
                        if live:
                            return None
                        term += 1  # a new holder: a new term
                    cur.execute(QUERIES["take_lease"], (node_id, term, self._micros, role))
                    return term
            except pymysql.err.IntegrityError as exc:
                if exc.args and exc.args[0] == _DUPLICATE:
                    return None  # another node created the role's first lease at the same moment
                raise

        term = self.db.run("claiming a role", work)
        return None if term is None else Lease(role, node_id, self.ttl, term)

    def release(self, role: str, node_id: str) -> None:
        """Give ``role`` up if ``node_id`` holds it (the row and its term stay for the next holder)."""
        self.db.execute("releasing a role", QUERIES["release_role"], (role, node_id))

    def holders(self) -> dict[str, tuple[str, int]]:
        """Every role held now: its node id and term."""
        rows = self.db.fetchall("listing role holders", QUERIES["role_holders"])
        return {role: (node, int(term)) for role, node, term in rows}

    # -- membership (actorflow.capabilities.Membership) ----------------------------------

    def join(self, node_id: str, roles: Sequence[str]) -> None:
        """Register ``node_id`` as live, able to work ``roles``; drop nodes away for an hour."""

        def work(conn: Any) -> None:
            with transaction(conn) as cur:
                cur.execute(QUERIES["join_node"], (node_id, self._micros))
                cur.execute(QUERIES["clear_node_roles"], (node_id,))
                if roles:
                    cur.executemany(QUERIES["add_node_role"], [(node_id, role) for role in dict.fromkeys(roles)])
                cur.execute(QUERIES["forget_dead_node_roles"])
                cur.execute(QUERIES["forget_dead_nodes"])

        self.db.run("joining the fleet", work)

    def heartbeat(self, node_id: str) -> FleetView:
        """Renew the node and all its leases in one transaction; the fleet as it is now."""

        def work(conn: Any) -> tuple[bool, list[Any], list[Any], list[Any]]:
            with transaction(conn) as cur:
                joined = cur.execute(QUERIES["renew_node"], (self._micros, node_id)) > 0
                leases: list[Any] = []
                if joined:
                    cur.execute(QUERIES["renew_leases"], (self._micros, node_id))
                    cur.execute(QUERIES["node_leases"], (node_id,))
                    leases = list(cur.fetchall())
                cur.execute(QUERIES["role_candidates"])
                candidates = list(cur.fetchall())
                cur.execute(QUERIES["role_holders"])
                holders = [(role, node) for role, node, _ in cur.fetchall()]
                return joined, leases, candidates, holders

        joined, leases, candidates, holders = self.db.run("heartbeat", work)
        return fleet_view(joined=joined, leases=leases, candidates=candidates, holders=holders, ttl=self.ttl)

    def leave(self, node_id: str) -> None:
        """Release every lease of ``node_id`` and drop it from the live nodes, in one transaction."""

        def work(conn: Any) -> None:
            with transaction(conn) as cur:
                cur.execute(QUERIES["release_node_leases"], (node_id,))
                cur.execute(QUERIES["delete_node"], (node_id,))
                cur.execute(QUERIES["clear_node_roles"], (node_id,))

        self.db.run("leaving the fleet", work)

    def nodes(self) -> builtins.list[NodeInfo]:
        """The live nodes, by id, with the roles each holds now."""
        return node_infos(self.db.fetchall("listing the fleet", QUERIES["live_nodes"]), from_db)
