"""Supervision: crashed or killed actors are restarted with back-off; persistent crashes mark failure."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pykka
from prometheus_client import CollectorRegistry

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from actorflow.runtime.actor import ProcessActor
from tests.model import Item, Stage, two_steps
from tests.waiting import eventually

FAST = af.RestartPolicy(initial=0.01, maximum=0.05, jitter=0.01, stable_after=0.3, max_restarts=3, window=30)


class FlakyStore(MemoryRecordStore):
    """A record store whose outbox listing fails while ``broken`` is set (a database outage)."""

    def __init__(self) -> None:
        super().__init__(outbox=True)
        self.broken = threading.Event()
        self.failures = 0

    def list_outbox_events(self, workflow_name, limit):
        if self.broken.is_set():
            self.failures += 1
            raise ConnectionError("database went away")
        return super().list_outbox_events(workflow_name, limit)


def actor_of(key: str) -> pykka.ActorRef | None:
    for ref in pykka.ActorRegistry.get_by_class(ProcessActor):
        try:
            if ref.is_alive() and ref.proxy().plan.get(timeout=2).key == key:
                return ref
        except pykka.ActorDeadError:
            continue
    return None


def restarts(registry: CollectorRegistry, wf: str, process: str) -> float:
    return (
        registry.get_sample_value("actorflow_actor_restarts_total", {"workflow_name": wf, "process_name": process}) or 0
    )


def test_a_killed_actor_is_restarted_and_work_goes_on():
    """Stopping a process actor behind the supervisor's back gets it restarted."""
    registry = CollectorRegistry()
    wf = two_steps("killed").build(MemoryEventStreamer(), MemoryRecordStore(outbox=True), MemoryRoleScheduler())
    with af.Supervisor([wf], registry=registry, restart=FAST):
        key = "killed/started-consumer-1-of-1"
        victim = actor_of(key)
        assert victim is not None
        victim.stop()

        def replaced() -> bool:
            found = actor_of(key)
            return found is not None and found.actor_urn != victim.actor_urn

        eventually(replaced, what="restart")
        assert restarts(registry, "killed", "started-consumer-1-of-1") == 1
        run_id = wf.trigger("x", Item("x"))
        assert wf.await_status("x", run_id, Stage.DONE, timeout=5).object.steps == 2


def test_an_actor_that_raises_is_restarted_with_backoff():
    """An adapter error crashes the actor; the new one picks up where the stream was acknowledged."""
    registry = CollectorRegistry()
    store = FlakyStore()
    wf = two_steps("flaky").build(MemoryEventStreamer(), store, MemoryRoleScheduler())
    with af.Supervisor([wf], registry=registry, restart=FAST):
        store.broken.set()
        run_id = wf.trigger("x", Item("x"))
        eventually(lambda: store.failures >= 2, what="outbox crashes")
        store.broken.clear()
        assert wf.await_status("x", run_id, Stage.DONE, timeout=5).object.steps == 2
        assert restarts(registry, "flaky", "outbox-consumer") >= 2


def test_crashing_past_the_intensity_limit_marks_the_process_failed_until_it_recovers():
    """Too many crashes in the window: FAILED in states(), the gauge and /healthz; it recovers after."""
    registry = CollectorRegistry()
    store = FlakyStore()
    wf = two_steps("failing").build(MemoryEventStreamer(), store, MemoryRoleScheduler())
    store.broken.set()
    with af.Supervisor([wf], registry=registry, restart=FAST, metrics_port=0) as sup:
        key = "failing/outbox-consumer"
        eventually(lambda: sup.states().get(key) is af.ProcessState.FAILED, what="FAILED state")
        labels = {"workflow_name": "failing", "process_name": "outbox-consumer"}
        assert registry.get_sample_value("actorflow_process_failed", labels) == 1
        url = f"http://127.0.0.1:{sup.metrics_port}/healthz"
        try:
            urllib.request.urlopen(url, timeout=5)
            raise AssertionError("healthz should fail")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
            assert json.loads(exc.read())["failed"] == [key]
        store.broken.clear()
        eventually(lambda: sup.states().get(key) is af.ProcessState.RUNNING, timeout=10, what="recovery")
        assert registry.get_sample_value("actorflow_process_failed", labels) == 0
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200
