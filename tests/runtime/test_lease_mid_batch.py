"""A lease that runs out in the middle of a batch: the batch is kept, never skipped.

The receiver's position is already past the batch when the lease runs out. If the
consumer dropped the batch and its lease was then renewed (the renewal waits in the
actor's mailbox until the tick ends), its next ack would move the durable cursor past
events that were never handled.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from actorflow.metrics import metrics_for
from actorflow.processes.base import Process
from actorflow.runtime.plan import plan_workflow
from tests.model import Item, Stage, two_steps


def _process(wf: af.Workflow[Item, Stage], prefix: str) -> Process:
    plan = next(p for p in plan_workflow(wf.engine) if p.name.startswith(prefix))
    return plan.make(metrics_for(CollectorRegistry()).process(wf.name, plan.name))


def test_a_lease_lost_mid_batch_keeps_the_batch_for_when_it_is_renewed() -> None:
    wf = two_steps("lease-mid-batch").build(
        MemoryEventStreamer(), MemoryRecordStore(outbox=True), MemoryRoleScheduler()
    )
    run_ids = [wf.trigger(f"r{i}", Item(f"r{i}")) for i in range(5)]
    outbox = _process(wf, "outbox")
    outbox.start()
    outbox.tick(0.5)  # the five events reach the topic
    outbox.stop()
    consumer = _process(wf, "started-consumer")
    consumer.start()
    try:
        consumer.valid_until = time.monotonic() - 1  # the lease ran out before the batch commits
        consumer.tick(0.5)
        assert all(wf.record_store.lookup(r).status == Stage.STARTED for r in run_ids), "nothing committed"
        consumer.valid_until = None  # the renewal arrives
        consumer.tick(0.5)  # the kept batch is handled; nothing new is on the topic
    finally:
        consumer.stop()
    assert [wf.record_store.lookup(r).status for r in run_ids] == [Stage.FIRST] * 5
