"""Where each role should run: rendezvous (highest random weight) hashing with bounded loads.

Every node computes the same answer from the same view of the fleet, with no
coordination. Plain rendezvous hashing gives each role to its highest-weight live
candidate, so a node joining or leaving moves only the roles it wins or loses; but over
the few dozen roles of a typical fleet its shares are uneven (two nodes on 24 roles
split 16/8 in a measured run, which caps two nodes at 1.5 times one). So each node also
takes at most its fair share, ``ceil(roles / nodes)``: roles are assigned one by one, the
most constrained first (fewest candidates), each to its highest-weight candidate that is
not yet full. A join or a leave still moves about a node's share, plus the few roles
that cascade past a full node.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence

__all__ = ["place"]


def _weight(role: str, node_id: str) -> int:
    digest = hashlib.blake2b(f"{role}\x00{node_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def place(candidates: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The node each role should run on, given the live nodes that may work it (roles with none are left out)."""
    nodes = {node for nodes in candidates.values() for node in nodes}
    if not nodes:
        return {}
    cap = -(-len(candidates) // len(nodes))
    load: Counter[str] = Counter()
    placed: dict[str, str] = {}
    # An order every node agrees on (not the mapping's): the most constrained roles first,
    # so a role only one node may work never finds that node full; then by a hash of the
    # role, so no node's roles come first as a group.
    order = sorted(candidates, key=lambda role: (len(set(candidates[role])), _weight(role, ""), role))
    for role in order:
        ranked = sorted(set(candidates[role]), key=lambda node: (_weight(role, node), node), reverse=True)
        if not ranked:
            continue
        node = next((node for node in ranked if load[node] < cap), ranked[0])
        placed[role] = node
        load[node] += 1
    return placed
