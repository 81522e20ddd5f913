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
    """Each role is RUNNING on one of the two nodes, never both; 40 runs complete with each step run once."""
    calls: list[tuple[str, Stage]] = []
    a, b = (two_steps("fleet", parallel=2, calls=calls).build(*new_node()) for _ in range(2))
    with _supervisor(a, "node-a") as sup_a, _supervisor(b, "node-b") as sup_b:

        def holders_per_role() -> set[int]:
            states_a, states_b = sup_a.states(), sup_b.states()
            return {[states_a[k], states_b[k]].count(af.ProcessState.RUNNING) for k in states_a}

        def one_holder_each() -> bool:
            return holders_per_role() == {1}

        eventually(one_holder_each, what="every role held by exactly one node")
        held_a, held_b = sup_a.roles(), sup_b.roles()
        assert not held_a.keys() & held_b.keys()
        assert len(held_a) + len(held_b) == len(sup_a.states())  # every role, once
        assert all(term >= 1 for term in (*held_a.values(), *held_b.values()))
        runs = [(f"r{i}", a.trigger(f"r{i}", Item(f"r{i}"))) for i in range(40)]
        for foreign_id, run_id in runs:
            assert b.await_status(foreign_id, run_id, Stage.DONE, timeout=15).object.steps == 2
            assert max(holders_per_role()) <= 1, "a role worked by both nodes"
        eventually(one_holder_each, what="every role held by exactly one node, after the runs")
    assert len(calls) == 80
    assert set(Counter(calls).values()) == {1}, "a step ran twice"


def _running(sup: af.Supervisor) -> set[str]:
    return {key for key, state in sup.states().items() if state is af.ProcessState.RUNNING}


def test_the_roles_are_spread_over_the_nodes_and_a_stopped_nodes_move_to_the_other(new_node):
    """Both nodes get a share (rendezvous placement); when one stops, the other takes every role."""
    a, b = (two_steps("fleet", parallel=6).build(*new_node()) for _ in range(2))
    sup_a = _supervisor(a, "node-a")
    with sup_a, _supervisor(b, "node-b") as sup_b:
        every = set(sup_a.states())

        def spread() -> bool:
            on_a, on_b = _running(sup_a), _running(sup_b)
            return bool(on_a) and bool(on_b) and not on_a & on_b and on_a | on_b == every

        eventually(spread, timeout=10.0, what="every role on exactly one node, each node with a share")
        sup_a.stop()
        eventually(lambda: _running(sup_b) == every, timeout=5.0, what="node b holding every role")
        run_id = b.trigger("after", Item("after"))
        assert b.await_status("after", run_id, Stage.DONE, timeout=10).object.steps == 2
        assert {n.node_id for n in sup_b.nodes()} == {"node-b"}


def test_a_node_joining_a_busy_fleet_takes_its_share_without_stalling_runs(new_node):
    """Node a works everything; node b joins while runs flow: roles move over, every run completes once."""
    calls: list[tuple[str, Stage]] = []
    a, b = (two_steps("fleet", parallel=6, calls=calls).build(*new_node()) for _ in range(2))
    with _supervisor(a, "node-a") as sup_a:
        every = set(sup_a.states())
        eventually(lambda: _running(sup_a) == every, what="node a holding every role")
        first = [(f"a{i}", a.trigger(f"a{i}", Item(f"a{i}"))) for i in range(20)]
        with _supervisor(b, "node-b") as sup_b:
            later = [(f"b{i}", a.trigger(f"b{i}", Item(f"b{i}"))) for i in range(20)]
            eventually(lambda: bool(_running(sup_b)), timeout=10.0, what="node b taking its share")
            for foreign_id, run_id in first + later:
                assert a.await_status(foreign_id, run_id, Stage.DONE, timeout=15).object.steps == 2
            assert not _running(sup_a) & _running(sup_b)
            assert {n.node_id for n in sup_a.nodes()} == {"node-a", "node-b"}
    assert len(calls) == 80
    assert set(Counter(calls).values()) == {1}, "a step ran twice"


def test_a_node_takes_its_id_from_its_shared_scheduler(new_node):
    """Supervisor(node_id=None) is known in the fleet by the node id its scheduler was made with."""
    streamer, store, scheduler = new_node()
    wf = two_steps("named").build(streamer, store, scheduler)
    with af.Supervisor([wf], registry=CollectorRegistry()) as sup:
        assert sup.node_id == scheduler.node_id
        eventually(lambda: [n.node_id for n in sup.nodes()] == [scheduler.node_id], what="the node in the fleet")


def test_healthz_fails_when_the_node_can_take_no_role_while_its_roles_stay_unclaimed(new_node, monkeypatch):
    """Heartbeats succeed but every claim is refused: the node holds nothing, nothing is held: /healthz 503."""
    import json
    import urllib.error
    import urllib.request

    from actorflow.runtime import supervisor

    monkeypatch.setattr(supervisor, "_STARVED_PATIENCE", 0.5)
    streamer, store, scheduler = new_node()
    monkeypatch.setattr(scheduler, "acquire", lambda role, node_id: None)  # every claim refused
    wf = two_steps("starved").build(streamer, store, scheduler)

    def healthz(port: int | None) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
                return resp.status, json.loads(resp.read())["roles"]
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())["roles"]

    with af.Supervisor([wf], registry=CollectorRegistry(), node_id="starved", metrics_port=0) as sup:
        code, roles = eventually(lambda: (h := healthz(sup.metrics_port))[0] == 503 and h, what="/healthz failing")
        assert code == 503
        assert "holding no role" in roles
