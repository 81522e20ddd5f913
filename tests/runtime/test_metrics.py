"""Metrics: the original's names and labels, the runtime's own, and the HTTP endpoint."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from prometheus_client import CollectorRegistry
from runtime_flows import Item, Status

import actorflow as af


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return resp.read().decode()


def test_metrics_endpoint_serves_the_original_names(make_workflow):
    """/metrics shows the original's metric names exactly (no _total suffix on its counters)."""
    wf = make_workflow("metered")
    with af.Supervisor([wf], metrics_port=0, registry=CollectorRegistry()) as sup:
        run_id = wf.trigger("x", Item("x"))
        wf.await_status("x", run_id, Status.DONE, timeout=5)
        text = scrape(sup.metrics_port)
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
            wf.await_status("x", run_id, Status.DONE, timeout=5)
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
