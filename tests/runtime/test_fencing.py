"""Fencing: a node that wakes up after its role passed to another node stores nothing.

The frozen node is played here by a step consumer driven by hand: it takes a batch under
its lease, its lease runs out and another node takes the role (a higher term), then it
handles the batch and tries to commit. The store checks the lease in the commit's own
transaction and refuses it whole.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry

import actorflow as af
from actorflow.metrics import metrics_for
from actorflow.processes.base import Process
from actorflow.protocols import Fence
from actorflow.runtime.plan import plan_workflow
from actorflow.testing.adaptertest import await_role
from tests.model import Item, Stage, two_steps


def _process(wf: Any, registry: CollectorRegistry, name: str = "started-consumer") -> tuple[Process, str]:
    """The workflow's process whose name starts with ``name``, made by hand (not hosted), and its role."""
    plan = next(p for p in plan_workflow(wf.engine) if p.name.startswith(name))
    return plan.make(metrics_for(registry).process(wf.name, plan.name)), plan.role


def _frozen(wf: Any, first: Any, second: Any, registry: CollectorRegistry, name: str = "started-consumer") -> Any:
    """Node a's process, started under its lease, which then runs out and node b takes: (process, role, b's lease).

    Node a is "frozen" meanwhile: the caller ticks it afterwards, as a node waking up.
    """
    frozen, role = _process(wf, registry, name)
    old = first.acquire(role, "node-a")
    assert old is not None
    frozen.fence = Fence(role, "node-a", old.term)
    frozen.start()
    new = await_role(second, role, "node-b", timeout=(old.ttl or 0) + 5)
    assert new is not None
    assert new.term > old.term
    return frozen, role, new


def _successor_tick(wf: Any, role: str, lease: Any, registry: CollectorRegistry) -> None:
    """Node b's step consumer, under its lease, handles what it is given once."""
    successor, _ = _process(wf, registry)
    successor.fence = Fence(role, "node-b", lease.term)
    successor.start()
    try:
        successor.tick(0.5)
    finally:
        successor.stop()


def _fenced(registry: CollectorRegistry, workflow: str, process: str) -> float | None:
    return registry.get_sample_value(
        "actorflow_fenced_writes_total", {"workflow_name": workflow, "process_name": process}
    )


def test_a_node_waking_after_its_role_moved_commits_nothing_and_stops(new_node, caplog):
    """Node a's late batch is refused whole (counted, not acknowledged); node b, under its term, does the work."""
    streamer_a, store_a, scheduler_a = new_node()
    streamer_b, store_b, scheduler_b = new_node()
    wf_a = two_steps("fenced").build(streamer_a, store_a, scheduler_a)
    wf_b = two_steps("fenced").build(streamer_b, store_b, scheduler_b)
    assert wf_a.engine.capabilities.fences, "the store and the leases share a database: writes are fenced"
    run_ids = [wf_a.trigger(f"r{i}", Item(f"r{i}")) for i in range(5)]

    registry = CollectorRegistry()
    frozen, role, new = _frozen(wf_a, scheduler_a, scheduler_b, registry)  # node b took the role over
    try:
        frozen.tick(0.5)  # node a wakes up and handles the batch it reads
        assert [store_a.lookup(r).status for r in run_ids] == [Stage.STARTED] * 5, "a late write got through"
        assert not frozen.holding(), "a fenced-out node stops working the role"
        assert _fenced(registry, "fenced", frozen.name) == 5
        refusal = next(r.getMessage() for r in caplog.records if "passed to another node" in r.getMessage())
        assert f"{frozen.name} on node node-a" in refusal and run_ids[0] in refusal, refusal  # step, node, runs
    finally:
        frozen.stop()
    _successor_tick(wf_b, role, new, CollectorRegistry())  # node a never acknowledged: node b gets the events
    assert [store_b.lookup(r).status for r in run_ids] == [Stage.FIRST] * 5


def test_a_node_waking_after_its_role_moved_cannot_move_the_cursor(new_node):
    """Node a's late batch needs no write (its runs moved on), only an ack: refused; node b reads the events again."""
    streamer_a, store_a, scheduler_a = new_node()
    streamer_b, store_b, scheduler_b = new_node()
    wf_a = two_steps("acks").build(streamer_a, store_a, scheduler_a)
    wf_b = two_steps("acks").build(streamer_b, store_b, scheduler_b)
    assert wf_a.engine.capabilities.fenced_acks, "the cursors and the leases share a database: acks are fenced"
    run_ids = [wf_a.trigger(f"r{i}", Item(f"r{i}")) for i in range(3)]
    for run_id in run_ids:  # another writer moves every run on: their STARTED events need nothing done
        moved = wf_a.engine.transitions.next(store_a.lookup(run_id), run_state=af.RunState.RUNNING, status=Stage.FIRST)
        store_a.store(moved.record)

    registry = CollectorRegistry()
    frozen, role, new = _frozen(wf_a, scheduler_a, scheduler_b, registry)
    try:
        frozen.tick(0.5)  # node a wakes up: every event skipped, then its ack is refused
        assert not frozen.holding(), "a fenced-out node stops working the role"
        assert _fenced(registry, "acks", frozen.name) == 1
    finally:
        frozen.stop()
    registry_b = CollectorRegistry()
    _successor_tick(wf_b, role, new, registry_b)  # the cursor did not move: node b is handed the same events
    skipped = sum(
        sample.value
        for metric in registry_b.collect()
        if metric.name == "workflow_process_skipped_events_count"
        for sample in metric.samples
    )
    assert skipped == 3, "node b did not get the events node a could not acknowledge"


def test_a_timeout_inserter_waking_after_its_role_moved_sets_no_timer(new_timed_node):
    """Node a's inserter reads runs reaching a timed status, its lease runs out: it creates no timeout, acks nothing."""
    streamer_a, store_a, scheduler_a, timeouts_a = new_timed_node()

    def timed() -> af.Builder[Item, Stage]:
        b = af.Builder("timers", Item, Stage)
        b.add_timeout(
            Stage.STARTED, lambda _run, now: now + timedelta(hours=1), lambda _run, _now: Stage.FIRST, Stage.FIRST
        )
        return b

    wf_a = timed().build(streamer_a, store_a, scheduler_a, timeout_store=timeouts_a)
    run_ids = [wf_a.trigger(f"r{i}", Item(f"r{i}")) for i in range(3)]
    registry = CollectorRegistry()
    _, _, scheduler_b, _ = new_timed_node()
    frozen, _, _ = _frozen(wf_a, scheduler_a, scheduler_b, registry, name="started-timeout-auto-inserter")
    try:
        frozen.tick(0.5)  # node a wakes up with the batch: its first timeout is refused
        assert not frozen.holding(), "a fenced-out node stops working the role"
    finally:
        frozen.stop()
    assert timeouts_a.list("timers") == [], "a timeout was created under a lease the role had moved on from"
    assert _fenced(registry, "timers", frozen.name) == 1
    assert len(run_ids) == 3
