"""Two nodes on one database, each with its own adapters, sharing roles through the lease table.

Each node is a `Supervisor` over adapter objects of its own (their own pools or
connections), as two processes would have: a role is worked by one node at a time, every
step runs once, and when a node stops its roles move to the other.
"""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry

import actorflow as af
from tests.model import Item, Stage, two_steps
from tests.waiting import eventually


def _supervisor(wf: af.Workflow[Item, Stage], node_id: str) -> af.Supervisor:
    return af.Supervisor([wf], registry=CollectorRegistry(), node_id=node_id, claim_interval=0.05)


def test_two_nodes_never_work_one_role_and_every_step_runs_once(new_node):
    """Each role is RUNNING on exactly one of the two nodes; 40 runs complete with each step run once."""
    calls: list[tuple[str, Stage]] = []
    a, b = (two_steps("fleet", parallel=2, calls=calls).build(*new_node()) for _ in range(2))
    with _supervisor(a, "node-a") as sup_a, _supervisor(b, "node-b") as sup_b:

        def one_holder_each() -> bool:
            states_a, states_b = sup_a.states(), sup_b.states()
            return all([states_a[k], states_b[k]].count(af.ProcessState.RUNNING) == 1 for k in states_a)

        eventually(one_holder_each, what="every role held by exactly one node")
        held_a, held_b = sup_a.roles(), sup_b.roles()
        assert not held_a.keys() & held_b.keys()
        assert len(held_a) + len(held_b) == len(sup_a.states())  # every role, once
        assert all(term >= 1 for term in (*held_a.values(), *held_b.values()))
        runs = [(f"r{i}", a.trigger(f"r{i}", Item(f"r{i}"))) for i in range(40)]
        for foreign_id, run_id in runs:
            assert b.await_status(foreign_id, run_id, Stage.DONE, timeout=15).object.steps == 2
        assert one_holder_each()
    assert len(calls) == 80
    assert set(Counter(calls).values()) == {1}, "a step ran twice"


def test_a_stopped_nodes_roles_move_to_the_other_at_once(new_node):
    """Stopping a node releases its leases: the other node takes every role well before the ttl."""
    a, b = (two_steps("fleet", parallel=2).build(*new_node()) for _ in range(2))
    sup_a = _supervisor(a, "node-a")
    with sup_a:
        eventually(lambda: all(s is af.ProcessState.RUNNING for s in sup_a.states().values()), what="a runs")
        with _supervisor(b, "node-b") as sup_b:
            assert all(s is af.ProcessState.IDLE for s in sup_b.states().values())
            sup_a.stop()
            eventually(
                lambda: all(s is af.ProcessState.RUNNING for s in sup_b.states().values()),
                timeout=5.0,
                what="node b holding every role",
            )
            run_id = b.trigger("after", Item("after"))
            assert b.await_status("after", run_id, Stage.DONE, timeout=10).object.steps == 2
