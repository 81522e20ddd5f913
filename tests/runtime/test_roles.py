"""Roles across nodes: each role is worked by one node at a time, and moves when a node goes."""

from __future__ import annotations

import threading
from collections import Counter

from prometheus_client import CollectorRegistry

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from actorflow.protocols import Lease
from tests.model import Item, Stage, two_steps
from tests.waiting import eventually


def test_two_nodes_split_roles_and_never_both_work_one(make_workflow):
    """Two supervisors over one role scheduler: each role runs on exactly one node; every step runs once."""
    streamer, store, scheduler = MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler()
    calls: list[tuple[str, Stage]] = []
    node_a = two_steps("shared", parallel=3, calls=calls).build(streamer, store, scheduler)
    node_b = two_steps("shared", parallel=3, calls=calls).build(streamer, store, scheduler)
    with (
        af.Supervisor([node_a], registry=CollectorRegistry(), node_id="a", claim_interval=0.05) as sup_a,
        af.Supervisor([node_b], registry=CollectorRegistry(), node_id="b", claim_interval=0.05) as sup_b,
    ):
        states_a, states_b = sup_a.states(), sup_b.states()
        assert states_a.keys() == states_b.keys()
        for key in states_a:
            running = [s for s in (states_a[key], states_b[key]) if s is af.ProcessState.RUNNING]
            assert len(running) == 1, key
        ids = [(f"r{i}", node_a.trigger(f"r{i}", Item(f"r{i}"))) for i in range(60)]
        for foreign_id, run_id in ids:
            node_b.await_status(foreign_id, run_id, Stage.DONE, timeout=10)
    assert set(Counter(calls).values()) == {1}
    assert len(calls) == 120


def test_roles_move_to_the_other_node_when_one_stops(make_workflow):
    """When a node stops it releases its roles and the other node takes them within seconds."""
    streamer, store, scheduler = MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler()
    first = two_steps("handover").build(streamer, store, scheduler)
    second = two_steps("handover").build(streamer, store, scheduler)
    sup_a = af.Supervisor([first], registry=CollectorRegistry(), node_id="a", claim_interval=0.05)
    sup_b = af.Supervisor([second], registry=CollectorRegistry(), node_id="b", claim_interval=0.05)
    sup_a.start()
    try:
        with sup_b:
            assert all(s is af.ProcessState.IDLE for s in sup_b.states().values())
            sup_a.stop()
            eventually(
                lambda: all(s is af.ProcessState.RUNNING for s in sup_b.states().values()),
                what="roles moving to node b",
            )
            run_id = second.trigger("after", Item("after"))
            assert second.await_status("after", run_id, Stage.DONE, timeout=5).object.steps == 2
    finally:
        sup_a.stop()


class OutageScheduler:
    """A role scheduler a node cannot reach while ``down`` is set."""

    def __init__(self, inner: MemoryRoleScheduler) -> None:
        self.inner = inner
        self.down = threading.Event()

    def acquire(self, role: str, node_id: str) -> Lease | None:
        if self.down.is_set():
            raise ConnectionError("role store unreachable")
        return self.inner.acquire(role, node_id)

    def release(self, role: str, node_id: str) -> None:
        if not self.down.is_set():
            self.inner.release(role, node_id)


def test_a_node_that_cannot_renew_stops_working_before_its_lease_expires():
    """Leases with a ttl: the cut-off node goes idle, and only then can the other node take over."""
    shared = MemoryRoleScheduler(ttl=0.6)
    cut_off = OutageScheduler(shared)
    streamer, store = MemoryEventStreamer(), MemoryRecordStore()
    a = two_steps("lease").build(streamer, store, cut_off)
    b = two_steps("lease").build(streamer, store, shared)
    sup_a = af.Supervisor([a], registry=CollectorRegistry(), node_id="a", claim_interval=0.05)
    sup_b = af.Supervisor([b], registry=CollectorRegistry(), node_id="b", claim_interval=0.05)
    with sup_a:
        eventually(lambda: all(s is af.ProcessState.RUNNING for s in sup_a.states().values()), what="a runs")
        with sup_b:
            cut_off.down.set()
            # Node a gives every role up once its lease would no longer be safe ...
            eventually(lambda: all(s is af.ProcessState.IDLE for s in sup_a.states().values()), what="a idles")
            # ... and node b gets them once the leases expired.
            eventually(lambda: all(s is af.ProcessState.RUNNING for s in sup_b.states().values()), what="b runs")
            run_id = b.trigger("x", Item("x"))
            assert b.await_status("x", run_id, Stage.DONE, timeout=5).object.steps == 2


def test_a_process_works_under_its_leases_term_and_a_new_holder_gets_a_higher_one():
    """The fencing term of each lease reaches the process working the role; it grows when the role moves."""
    import pykka

    from actorflow.runtime.actor import ProcessActor

    scheduler = MemoryRoleScheduler()
    wf = two_steps("terms").build(MemoryEventStreamer(), MemoryRecordStore(), scheduler)

    def terms() -> dict[str, int]:
        found = {}
        for ref in pykka.ActorRegistry.get_by_class(ProcessActor):
            proxy = ref.proxy()
            plan, process = proxy.plan.get(timeout=2), proxy.process.get(timeout=2)
            if plan.engine is wf.engine and process is not None:
                found[plan.role] = process.term
        return found

    with af.Supervisor([wf], registry=CollectorRegistry(), node_id="first"):
        first = eventually(lambda: (t := terms()) and all(t.values()) and t, what="every process holding its role")
    assert set(first.values()) == {1}
    with af.Supervisor([wf], registry=CollectorRegistry(), node_id="second"):
        second = eventually(lambda: (t := terms()) and all(t.values()) and t, what="every role held again")
    assert second.keys() == first.keys()
    assert set(second.values()) == {2}, "the role passed to another node: a higher term"


def _healthz(port: int | None) -> tuple[int, dict[str, object]]:
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_healthz_fails_while_the_role_scheduler_cannot_be_reached_and_recovers_after():
    """A scheduler failing every call: /healthz 503 once no success covers a lease, claim errors counted; then 200."""
    registry = CollectorRegistry()
    cut_off = OutageScheduler(MemoryRoleScheduler(ttl=0.6))
    wf = two_steps("unreachable").build(MemoryEventStreamer(), MemoryRecordStore(), cut_off)
    with af.Supervisor([wf], registry=registry, node_id="n", claim_interval=0.05, metrics_port=0) as sup:
        eventually(lambda: _healthz(sup.metrics_port)[0] == 200, what="a healthy node")
        cut_off.down.set()
        _, body = eventually(
            lambda: (h := _healthz(sup.metrics_port))[0] == 503 and h, timeout=5.0, what="/healthz failing"
        )
        assert "role scheduler has not answered" in str(body["roles"])
        assert (registry.get_sample_value("actorflow_role_claim_errors_total", {"node_id": "n"}) or 0) > 0
        cut_off.down.clear()
        eventually(lambda: _healthz(sup.metrics_port)[0] == 200, timeout=5.0, what="/healthz healthy again")
