"""`PostgresRoleScheduler`: role leases in PostgreSQL, shared by every node of a fleet."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import psycopg

from actorflow.capabilities import FleetView, NodeInfo
from actorflow.options import duration
from actorflow.protocols import Lease, new_node_id

from .._sql.fleet import fleet_view, node_infos
from ._db import LeaseKeeper
from ._rows import rows_of
from ._schema import QUERIES

__all__ = ["PostgresRoleScheduler"]

_FLEET = "fleet"  # the notification payload of a change of the fleet


class PostgresRoleScheduler(LeaseKeeper):
    """Gives each role to at most one node of the fleet at a time, through a lease table.

    A lease lasts ``ttl`` seconds by the database's clock (never a node's: clocks of
    different hosts disagree) unless its holder renews it; another node may take the
    role only once it has run out, or its holder released it. Each lease carries a term
    that grows whenever the role passes to another node, so a node that was frozen or
    cut off and wakes up late can be refused (fencing). A lease table rather than session
    advisory locks: a frozen host's session, and so its locks, can live on for as long as
    TCP keepalive lets it; a lease runs out after ``ttl`` whatever the network does.

    Args:
        dsn: a libpq connection string or URL.
        node_id: this process's node id for the fleet (default: host, pid and a short
            random part, see `actorflow.protocols.new_node_id`).
        ttl: seconds a lease lasts unless renewed: the longest a dead node's roles stay
            unworked. The holder renews at a third of it and stops working a role a
            fifth of it before it would run out.
        schema: the schema the tables live in (created if missing).
        max_connections: the pool's size.
    """

    def __init__(
        self,
        dsn: str,
        *,
        node_id: str | None = None,
        ttl: float = 3.0,
        schema: str = "public",
        max_connections: int = 2,
    ) -> None:
        ttl = duration("ttl", ttl, positive=True)
        super().__init__(dsn, schema=schema, max_connections=max_connections)
        self.node_id = node_id or new_node_id()
        self.ttl = ttl

    def acquire(self, role: str, node_id: str) -> Lease | None:
        """Take or renew ``role`` for ``node_id``; ``None`` while another node's lease is live."""
        params = {"role": role, "node": node_id, "ttl": self.ttl}
        row = self.db.fetchone("claiming a role", QUERIES["acquire_role"], params)
        return None if row is None else Lease(role, node_id, self.ttl, int(row[0]))

    def release(self, role: str, node_id: str) -> None:
        """Give ``role`` up if ``node_id`` holds it; the other nodes are woken to take it at once."""

        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute(QUERIES["release_role"], (role, node_id))
                self.db.notify(conn, [_FLEET])

        self.db.run("releasing a role", work)

    def holders(self) -> dict[str, tuple[str, int]]:
        """Every role held now: its node id and term."""
        rows = self.db.fetchall("listing role holders", QUERIES["role_holders"])
        return {role: (node, int(term)) for role, node, term in rows}

    # -- membership (actorflow.capabilities.Membership) ----------------------------------

    def join(self, node_id: str, roles: Sequence[str]) -> None:
        """Register ``node_id`` as live, able to work ``roles``; drop nodes away for an hour."""

        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute(QUERIES["join_node"], {"node": node_id, "ttl": self.ttl})
                conn.execute(QUERIES["clear_node_roles"], (node_id,))
                with conn.cursor() as cur:
                    cur.executemany(QUERIES["add_node_role"], [(node_id, role) for role in roles])
                conn.execute(QUERIES["forget_dead_nodes"])
                self.db.notify(conn, [_FLEET])  # the others may hand roles over to it

        self.db.run("joining the fleet", work)

    def heartbeat(self, node_id: str) -> FleetView:
        """Renew the node and all its leases in one statement; the fleet as it is now."""
        rows = self.db.fetchall("heartbeat", QUERIES["heartbeat"], {"node": node_id, "ttl": self.ttl})
        kinds: dict[str, list[tuple[Any, Any]]] = {"node": [], "lease": [], "candidate": [], "holder": []}
        for kind, first, second in rows:
            kinds[kind].append((first, second))
        return fleet_view(
            joined=bool(kinds["node"]),
            leases=kinds["lease"],
            candidates=kinds["candidate"],
            holders=kinds["holder"],
            ttl=self.ttl,
        )

    def leave(self, node_id: str) -> None:
        """Release every lease of ``node_id`` and drop it from the live nodes, in one statement; wake the others."""

        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                conn.execute(QUERIES["leave_node"], {"node": node_id})
                self.db.notify(conn, [_FLEET])

        self.db.run("leaving the fleet", work)

    def fleet_changes(self) -> int:
        """Moves when a node of the fleet released a role, left or joined (NOTIFY; LISTEN starts on first use)."""
        return self.db.listener().version(_FLEET)

    def nodes(self) -> builtins.list[NodeInfo]:
        """The live nodes, by id, with the roles each holds now."""

        def fetch(conn: psycopg.Connection[Any]) -> list[Any]:
            return rows_of(conn.execute(QUERIES["live_nodes"]))

        return node_infos(self.db.run("listing the fleet", fetch), lambda value: value)
