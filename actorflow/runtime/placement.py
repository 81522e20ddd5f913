"""Where a role should run: rendezvous (highest random weight) hashing over its candidates.

Every node computes the same answer from the same list of live candidates, with no
coordination; when a node joins or leaves, only the roles it wins or loses move (about
1/n of them), never a reshuffle of the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["preferred_node"]


def _weight(role: str, node_id: str) -> int:
    digest = hashlib.blake2b(f"{role}\x00{node_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def preferred_node(role: str, candidates: Iterable[str]) -> str | None:
    """The candidate that should work ``role`` (``None`` when there is none)."""
    return max(candidates, key=lambda node_id: _weight(role, node_id), default=None)
