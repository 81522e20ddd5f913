"""Placement: rendezvous hashing with bounded loads, the same answer on every node."""

from __future__ import annotations

import random

from actorflow.runtime.placement import place

ROLES = [f"orders-{step}-consumer-{i}-of-8" for step in (1, 2, 3) for i in range(1, 9)]


def _shares(placed: dict[str, str]) -> list[int]:
    counts: dict[str, int] = {}
    for node in placed.values():
        counts[node] = counts.get(node, 0) + 1
    return sorted(counts.values())


def test_each_node_takes_its_fair_share():
    """24 roles: 12/12 on two nodes, 8/8/8 on three; 25 on three: nobody above 9."""
    assert _shares(place(dict.fromkeys(ROLES, ("a", "b")))) == [12, 12]
    assert _shares(place(dict.fromkeys(ROLES, ("a", "b", "c")))) == [8, 8, 8]
    assert max(_shares(place(dict.fromkeys([*ROLES, "one-more"], ("a", "b", "c"))))) == 9


def test_every_node_computes_the_same_placement_whatever_the_order_it_reads():
    """The mapping's order and each role's candidate order change nothing."""
    nodes = ("node-1", "node-2", "node-3")
    expected = place(dict.fromkeys(ROLES, nodes))
    rng = random.Random(7)  # noqa: S311 - reproducible test data
    for _ in range(20):
        roles = ROLES[:]
        rng.shuffle(roles)
        shuffled = {role: tuple(rng.sample(nodes, len(nodes))) for role in roles}
        assert place(shuffled) == expected


def test_a_node_joining_or_leaving_moves_about_its_share():
    """2 -> 3 nodes moves about a third of the roles (its share), not a reshuffle; a leave moves the leaver's roles."""
    rng = random.Random(11)  # noqa: S311 - reproducible test data
    moved_on_join, others_moved_on_leave = [], []
    for trial in range(100):
        roles = [f"w{trial}-{rng.random()}" for _ in range(24)]
        nodes = [f"host-{trial}-{k}" for k in range(3)]
        two = place(dict.fromkeys(roles, nodes[:2]))
        three = place(dict.fromkeys(roles, nodes))
        moved_on_join.append(sum(two[r] != three[r] for r in roles))
        others_moved_on_leave.append(sum(three[r] != two[r] for r in roles if three[r] != nodes[2]))
    assert sum(moved_on_join) / len(moved_on_join) <= 9.5, "the share of a third node is 8 of 24"
    assert max(moved_on_join) <= 12
    assert sum(others_moved_on_leave) / len(others_moved_on_leave) <= 1.5, "a leave reshuffled the others' roles"


def test_a_role_goes_only_to_a_node_that_may_work_it():
    """Nodes host different workflows: each role lands on one of its candidates, the shares still balanced."""
    candidates = {f"billing-{i}": ("a",) for i in range(6)} | {f"orders-{i}": ("a", "b") for i in range(6)}
    placed = place(candidates)
    assert all(placed[role] in nodes for role, nodes in candidates.items())
    assert _shares(placed) == [6, 6], "billing fills node a: the orders roles go to b"
    assert place({"lonely": ()}) == {}
    assert place({}) == {}
