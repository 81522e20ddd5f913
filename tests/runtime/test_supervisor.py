"""The supervisor: hosting workflows, states, lifecycle and a clean stop."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry

import actorflow as af
from tests.model import Item, Stage


def run_to_done(wf: af.Workflow[Item, Stage], foreign_id: str) -> af.Run[Item, Stage]:
    run_id = wf.trigger(foreign_id, Item(foreign_id))
    return wf.await_status(foreign_id, run_id, Stage.DONE, timeout=5)


def test_one_supervisor_hosts_two_workflows(make_workflow):
    """Two workflows under one supervisor both run, each on its own adapters."""
    a, b = make_workflow("alpha"), make_workflow("beta")
    with af.Supervisor([a, b], registry=CollectorRegistry()) as sup:
        assert run_to_done(a, "x").object.steps == 2
        assert run_to_done(b, "x").object.steps == 2
        states = sup.states()
    assert {k.split("/")[0] for k in states} == {"alpha", "beta"}
    assert states["alpha/started-consumer-1-of-1"] is af.ProcessState.RUNNING
    assert states["beta/outbox-consumer"] is af.ProcessState.RUNNING


def test_states_use_the_original_process_names(make_workflow):
    """states() lists every process under the original's names, keyed by workflow."""
    wf = make_workflow("names")
    with af.Supervisor([wf], registry=CollectorRegistry()) as sup:
        assert sorted(sup.states()) == [
            "names/delete-consumer",
            "names/first-consumer-1-of-1",
            "names/outbox-consumer",
            "names/paused-records-retry-consumer",
            "names/started-consumer-1-of-1",
        ]
        assert sorted(wf.states()) == [
            "delete-consumer",
            "first-consumer-1-of-1",
            "outbox-consumer",
            "paused-records-retry-consumer",
            "started-consumer-1-of-1",
        ]


def test_stop_joins_every_thread_within_five_seconds(make_workflow):
    """stop() returns within 5 s and no thread it started is left."""
    before = set(threading.enumerate())
    wf = make_workflow("stopper")
    sup = af.Supervisor([wf], metrics_port=0, registry=CollectorRegistry())
    sup.start()
    run_to_done(wf, "x")
    started = time.monotonic()
    sup.stop()
    assert time.monotonic() - started < 5
    assert [t.name for t in threading.enumerate() if t not in before] == []
    assert sup.states() == {}


def test_stop_waits_for_a_step_in_progress(make_workflow):
    """A step that is running when stop() is called finishes; stop still returns in time."""
    import enum as _enum

    entered, release = threading.Event(), threading.Event()

    class S(_enum.IntEnum):
        A = 1
        B = 2

    b = af.Builder("slow", Item, S)

    def slow(run: af.Run[Item, S]) -> S:
        entered.set()
        release.wait(1.0)
        return S.B

    b.add_step(S.A, slow, S.B)
    from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler

    wf = b.build(MemoryEventStreamer(), MemoryRecordStore(outbox=True), MemoryRoleScheduler())
    wf.run()
    wf.trigger("x")
    assert entered.wait(5)
    started = time.monotonic()
    wf.stop()
    assert time.monotonic() - started < 5


def test_run_is_idempotent_and_a_stopped_workflow_runs_again(make_workflow):
    """wf.run() twice starts once; after stop() the same instance can run again."""
    wf = make_workflow("again")
    wf.run()
    wf.run()
    try:
        run_to_done(wf, "first")
    finally:
        wf.stop()
    wf.stop()  # safe when stopped
    wf.run()
    try:
        assert run_to_done(wf, "second").object.steps == 2
    finally:
        wf.stop()


def test_a_hosted_workflow_cannot_be_run_or_hosted_twice(make_workflow):
    """A workflow is hosted by one supervisor at a time."""
    wf = make_workflow("hosted")
    with af.Supervisor([wf], registry=CollectorRegistry()):
        with pytest.raises(af.ActorflowError):
            wf.run()
        with pytest.raises(af.ActorflowError):
            af.Supervisor([wf], registry=CollectorRegistry()).start()
        with pytest.raises(af.ActorflowError):
            wf.stop()
        assert run_to_done(wf, "x").object.steps == 2


def test_two_workflows_with_one_name_are_refused(make_workflow):
    """Process keys must be unique on a node."""
    with pytest.raises(ValueError, match="same name"):
        af.Supervisor([make_workflow("dup"), make_workflow("dup")])


def test_trigger_works_on_an_instance_that_never_runs(make_workflow):
    """A service may only trigger; a node elsewhere (here: another instance) runs the steps."""
    from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler

    shared = {
        "streamer": MemoryEventStreamer(),
        "store": MemoryRecordStore(outbox=True),
        "scheduler": MemoryRoleScheduler(),
    }
    trigger_only = make_workflow("split", **shared)
    node = make_workflow("split", **shared)
    run_id = trigger_only.trigger("x", Item("x"))
    with af.Supervisor([node], registry=CollectorRegistry()):
        assert trigger_only.await_status("x", run_id, Stage.DONE, timeout=5).object.steps == 2
