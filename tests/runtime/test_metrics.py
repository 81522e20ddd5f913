"""Metrics: the original's names and labels, the runtime's own, and the HTTP endpoint."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from actorflow.topics import topic
from tests.model import Item, Stage
from tests.waiting import eventually


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return resp.read().decode()


def _scrape_after_one_run(wf: af.Workflow[Item, Stage]) -> str:
    """/metrics of a supervisor (on a free port) once one run of ``wf`` completed."""
    with af.Supervisor([wf], metrics_port=0, registry=CollectorRegistry()) as sup:
        run_id = wf.trigger("x", Item("x"))
        wf.await_status("x", run_id, Stage.DONE, timeout=5)
        return scrape(sup.metrics_port)


def test_metrics_endpoint_serves_the_original_names(make_workflow):
    """/metrics shows the original's metric names exactly (no _total suffix on its counters)."""
    text = _scrape_after_one_run(make_workflow("metered"))
    assert (
        'workflow_run_state_changes{current_run_state="Completed",previous_run_state="Running",workflow_name="metered"} 1.0'
        in text
    )
    assert (
        'workflow_run_state_changes{current_run_state="Initiated",previous_run_state="Unknown",workflow_name="metered"} 1.0'
        in text
    )
    assert 'workflow_process_states{process_name="started-consumer-1-of-1",workflow_name="metered"} 2.0' in text
    assert "workflow_process_latency_seconds_bucket{" in text
    assert "workflow_process_lag_seconds{" in text
    assert 'actorflow_roles_held{node_id="' in text
    assert "workflow_process_error_count_total" not in text


def test_healthz_reports_every_process(make_workflow):
    """/healthz is 200 with each process's state while all is well."""
    wf = make_workflow("healthy")
    with af.Supervisor([wf], metrics_port=0, registry=CollectorRegistry()) as sup:
        body = json.loads(scrape(sup.metrics_port, "/healthz"))
    assert body["status"] == "ok"
    assert body["processes"]["healthy/outbox-consumer"] == "Running"


def test_supervisors_sharing_a_registry_do_not_collide(make_workflow):
    """Metrics are registered once per registry: many supervisors and workflows share them."""
    registry = CollectorRegistry()
    for name in ("one", "two"):
        wf = make_workflow(name)
        with af.Supervisor([wf], registry=registry):
            run_id = wf.trigger("x", Item("x"))
            wf.await_status("x", run_id, Stage.DONE, timeout=5)
    labels = {"workflow_name": "two", "previous_run_state": "Running", "current_run_state": "Completed"}
    assert registry.get_sample_value("workflow_run_state_changes", labels) == 1


def test_importing_actorflow_registers_no_metric():
    """Nothing is registered at import time."""
    code = (
        "import actorflow, actorflow.adapters.memory\n"
        "from prometheus_client import REGISTRY\n"
        "names = [m.name for m in REGISTRY.collect()]\n"
        "assert not any(n.startswith(('workflow_', 'actorflow_')) for n in names), names\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- the original's process metrics, after the events that produce them ----------------------
#
# workflow_process_error_count, workflow_process_skipped_events_count and
# workflow_run_state_changes are counters in the original; here they are exposed under their
# exact names: untyped in prometheus_client's own exposition (it would rename a "counter"
# family to <name>_total), typed "counter" by the node's endpoint. The tests below pin the
# sample names and labels.

STARTED_CONSUMER = "started-consumer-1-of-1"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_a_failing_step_counts_workflow_process_error_count():
    """Each step error adds 1 to workflow_process_error_count{workflow_name, process_name}."""
    registry = CollectorRegistry()
    b = af.Builder("erring", Item, Stage)
    failures: list[int] = []

    def counting(run: af.Run[Item, Stage]) -> Stage:
        failures.append(1)
        if len(failures) <= 2:
            msg = f"flaky ({len(failures)})"
            raise RuntimeError(msg)
        return Stage.FIRST

    b.add_step(Stage.STARTED, counting, Stage.FIRST).with_options(err_backoff=0.01)
    b.add_step(Stage.FIRST, lambda run: Stage.DONE, Stage.DONE)
    wf = b.build(MemoryEventStreamer(), MemoryRecordStore(outbox=True), MemoryRoleScheduler())
    with af.Supervisor([wf], registry=registry):
        run_id = wf.trigger("x", Item("x"))
        wf.await_status("x", run_id, Stage.DONE, timeout=5)
        text = generate_latest(registry).decode()
    assert 'workflow_process_error_count{process_name="started-consumer-1-of-1",workflow_name="erring"} 2.0' in text
    assert "# HELP workflow_process_error_count " in text
    assert "workflow_process_error_count_total" not in text
    # The step that never failed has no errors counted.
    assert registry.get_sample_value(
        "workflow_process_error_count", {"workflow_name": "erring", "process_name": "first-consumer-1-of-1"}
    ) in (None, 0.0)


def test_skipped_events_are_counted_by_reason():
    """workflow_process_skipped_events_count{workflow_name, process_name, reason}: a skip, then an old event."""
    registry = CollectorRegistry()
    b = af.Builder("skipping", Item, Stage)
    b.add_step(Stage.STARTED, lambda run: run.skip() if run.foreign_id == "skip-me" else Stage.FIRST, Stage.FIRST)
    b.add_step(Stage.FIRST, lambda run: Stage.DONE, Stage.DONE)
    streamer = MemoryEventStreamer()
    wf = b.build(streamer, MemoryRecordStore(outbox=True), MemoryRoleScheduler())

    def skipped(reason: str) -> float | None:
        labels = {"workflow_name": "skipping", "process_name": STARTED_CONSUMER, "reason": reason}
        return registry.get_sample_value("workflow_process_skipped_events_count", labels)

    with af.Supervisor([wf], registry=registry):
        wf.trigger("skip-me", Item("skip-me"))
        behind = wf.trigger("behind", Item("behind"))
        wf.await_status("behind", behind, Stage.DONE, timeout=5)  # handled after the skipped run's event
        assert skipped("next value specified skip") == 1

        # The run's first event again: older than its record now.
        (old,) = [e for e in streamer.events(topic("skipping", Stage.STARTED)) if e.run_id == behind]
        sender = streamer.new_sender(topic("skipping", Stage.STARTED))
        sender.send(old.run_id, old.type, old.headers)
        eventually(lambda: skipped("event record version lower than latest record version") == 1, what="the skip")
        text = generate_latest(registry).decode()
    assert (
        'workflow_process_skipped_events_count{process_name="started-consumer-1-of-1",'
        'reason="next value specified skip",workflow_name="skipping"} 1.0'
    ) in text
    assert "workflow_process_skipped_events_count_total" not in text


def test_the_lag_alert_gauge_follows_the_age_of_the_event_handled():
    """workflow_process_lag_alert is 1 while the handled event is older than lag_alert, else 0.

    The step waits ``lag`` (60 s) before handling an event and alerts past 600 s. The fake
    clock moves only when told: the first event is handled 2 h after it was published, the
    second 120 s after.
    """
    registry = CollectorRegistry()
    clock = af.FakeClock(T0)
    b = af.Builder("lagging", Item, Stage)
    b.add_step(Stage.STARTED, lambda run: Stage.FIRST, Stage.FIRST).with_options(lag=60, lag_alert=600)
    b.add_step(Stage.FIRST, lambda run: Stage.DONE, Stage.DONE)
    streamer = MemoryEventStreamer(clock=clock)
    wf = b.build(streamer, MemoryRecordStore(outbox=True), MemoryRoleScheduler(), clock=clock)
    labels = {"workflow_name": "lagging", "process_name": STARTED_CONSUMER}
    started_topic = topic("lagging", Stage.STARTED)

    with af.Supervisor([wf], registry=registry):
        old = wf.trigger("old", Item("old"))
        eventually(lambda: len(streamer.events(started_topic)) == 1, what="the first event published")
        clock.advance(timedelta(hours=2))
        wf.await_status("old", old, Stage.FIRST, timeout=5)
        assert registry.get_sample_value("workflow_process_lag_seconds", labels) == 7200
        assert registry.get_sample_value("workflow_process_lag_alert", labels) == 1
        text = generate_latest(registry).decode()

        new = wf.trigger("new", Item("new"))
        eventually(lambda: len(streamer.events(started_topic)) == 2, what="the second event published")
        clock.advance(timedelta(seconds=120))
        wf.await_status("new", new, Stage.FIRST, timeout=5)
        assert registry.get_sample_value("workflow_process_lag_seconds", labels) == 120
        assert registry.get_sample_value("workflow_process_lag_alert", labels) == 0
    assert 'workflow_process_lag_alert{process_name="started-consumer-1-of-1",workflow_name="lagging"} 1.0' in text
    # A process without a lag alert of its own keeps the default (30 min): never raised here.
    middle = {"workflow_name": "lagging", "process_name": "first-consumer-1-of-1"}
    assert registry.get_sample_value("workflow_process_lag_alert", middle) == 0


def test_the_endpoint_types_the_originals_counters_as_counters(make_workflow):
    """/metrics writes ``# TYPE <name> counter`` for the original's three counters, under their exact names."""
    text = _scrape_after_one_run(make_workflow("typed"))
    for name in ("workflow_run_state_changes", "workflow_process_skipped_events_count", "workflow_process_error_count"):
        assert f"# TYPE {name} counter\n" in text, name
        assert f"# TYPE {name} untyped" not in text
        assert f"{name}_total" not in text
    assert 'workflow_run_state_changes{current_run_state="Completed"' in text
    # What a scraper makes of it: one counter family per name (this parser then names the
    # samples <name>_total, as it does for every counter).
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["workflow_run_state_changes"].type == "counter"
    assert [
        s.value for s in families["workflow_run_state_changes"].samples if s.labels["current_run_state"] == "Completed"
    ] == [1.0]


def test_a_metrics_port_that_cannot_be_bound_stops_the_start_and_leaves_nothing_running(make_workflow):
    """start() raises a one-line ActorflowError naming the address; no process, role or thread is left."""
    before = set(threading.enumerate())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        wf = make_workflow("unbindable")
        sup = af.Supervisor([wf], metrics_port=port, registry=CollectorRegistry())
        with pytest.raises(af.ActorflowError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            sup.start()
    assert not sup.running
    assert sup.states() == {}
    assert sup.roles() == {}
    assert [t.name for t in threading.enumerate() if t not in before and t.is_alive()] == []
    # Nothing half-started either: the same workflow starts on a free port afterwards.
    with af.Supervisor([wf], metrics_port=0, registry=CollectorRegistry()) as again:
        run_id = wf.trigger("x", Item("x"))
        assert wf.await_status("x", run_id, Stage.DONE, timeout=5).status == Stage.DONE
        assert again.metrics_port
