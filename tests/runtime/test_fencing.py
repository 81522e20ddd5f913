"""Fencing: a node that wakes up after its role passed to another node stores nothing.

The frozen node is played here by a step consumer driven by hand: it takes a batch under
its lease, its lease runs out and another node takes the role (a higher term), then it
handles the batch and tries to commit. The store checks the lease in the commit's own
transaction and refuses it whole.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from actorflow.metrics import metrics_for
from actorflow.processes.base import Process
from actorflow.protocols import Fence
from actorflow.runtime.plan import plan_workflow
from actorflow.testing.adaptertest import await_role
from tests.model import Item, Stage, two_steps


def _consumer(wf: Any, registry: CollectorRegistry) -> tuple[Process, str]:
    plan = next(p for p in plan_workflow(wf.engine) if p.name.startswith("started-consumer"))
    return plan.make(metrics_for(registry).process(wf.name, plan.name)), plan.role


def test_a_node_waking_after_its_role_moved_commits_nothing_and_stops(new_node, caplog):
    """Node a's late batch is refused whole (counted, not acknowledged); node b, under its term, does the work."""
    streamer_a, store_a, scheduler_a = new_node()
    streamer_b, store_b, scheduler_b = new_node()
    wf_a = two_steps("fenced").build(streamer_a, store_a, scheduler_a)
    wf_b = two_steps("fenced").build(streamer_b, store_b, scheduler_b)
    assert wf_a.engine.capabilities.fences, "the store and the leases share a database: writes are fenced"
    run_ids = [wf_a.trigger(f"r{i}", Item(f"r{i}")) for i in range(5)]

    registry = CollectorRegistry()
    frozen, role = _consumer(wf_a, registry)
    old = scheduler_a.acquire(role, "node-a")
    assert old is not None
    frozen.fence = Fence(role, "node-a", old.term)
    frozen.start()
    try:
        # Node a freezes past its lease; node b takes the role over.
        new = await_role(scheduler_b, role, "node-b", timeout=(old.ttl or 0) + 5)
        assert new is not None
        assert new.term > old.term
        frozen.tick(0.5)  # node a wakes up and handles the batch it reads
        assert [store_a.lookup(r).status for r in run_ids] == [Stage.STARTED] * 5, "a late write got through"
        assert not frozen.holding(), "a fenced-out node stops working the role"
        fenced = registry.get_sample_value(
            "actorflow_fenced_writes_total", {"workflow_name": "fenced", "process_name": frozen.name}
        )
        assert fenced == 5
        refusal = next(r.getMessage() for r in caplog.records if "passed to another node" in r.getMessage())
        assert f"{frozen.name} on node node-a" in refusal and run_ids[0] in refusal, refusal  # step, node, runs
    finally:
        frozen.stop()

    successor, _ = _consumer(wf_b, CollectorRegistry())
    successor.fence = Fence(role, "node-b", new.term)
    successor.start()
    try:
        successor.tick(0.5)  # the events node a read were never acknowledged: node b gets them
    finally:
        successor.stop()
    assert [store_b.lookup(r).status for r in run_ids] == [Stage.FIRST] * 5
