"""The Grafana dashboard and the Prometheus alerts in examples/grafana query metrics a node really exposes.

A node runs a workflow (a step that fails once, a run paused) and serves /metrics; every
metric and label the dashboard's panels and the alert rules name must be on it, and
every alert must say where its runbook is (docs/operations.md, whose sections exist).
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from tests.model import FAST, Order, Status

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "examples" / "grafana"
NAME = re.compile(r"\b((?:workflow|actorflow)_[a-z_]+)\b")
BY = re.compile(r"\bby \(([^)]*)\)")
MATCHER = re.compile(r"\b([a-z_]+)\s*=~?\s*\"")
FUNCTIONS = {"rate", "increase", "sum", "max", "histogram_quantile", "label_values"}


def _expressions() -> list[str]:
    dashboard = json.loads((GRAFANA / "actorflow-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    rules = yaml.safe_load((GRAFANA / "alerts.yml").read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    return exprs


@pytest.fixture(scope="module")
def exposition() -> str:
    """/metrics of a node that has handled runs, a step error, a pause and a skipped event."""
    failed: set[str] = set()

    def charge(run: af.Run[Order, Status]) -> Status:
        if run.foreign_id not in failed:
            failed.add(run.foreign_id)
            raise RuntimeError("once")
        return Status.CHARGED

    b = af.Builder("dash", Order, Status)
    b.add_step(Status.STARTED, charge, Status.CHARGED)
    b.add_step(Status.CHARGED, lambda run: Status.DONE, Status.DONE)
    wf = b.build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler(), defaults=FAST)
    supervisor = af.Supervisor([wf], metrics_port=0, registry=CollectorRegistry())
    # Paused before the node starts: its first step's event is met, and skipped, before a's.
    wf.pause(wf.trigger("c", Order(id="c")), "held")
    supervisor.start()
    try:
        run_id = wf.trigger("a", Order(id="a"))
        wf.await_status("a", run_id, Status.DONE, timeout=10)
        wf.pause(wf.trigger("b", Order(id="b")), "held")  # counted by the node's registry
        url = f"http://127.0.0.1:{supervisor.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()
    finally:
        supervisor.stop()


def test_every_metric_the_dashboard_and_alerts_query_is_exposed(exposition):
    declared = set(re.findall(r"^# TYPE (\S+) ", exposition, re.MULTILINE))
    labels = set(re.findall(r"[{,]([a-z_]+)=\"", exposition))
    missing = set()
    for expr in _expressions():
        for name in set(NAME.findall(expr)) - labels:
            base = re.sub(r"_(bucket|count|sum|total)$", "", name)
            if name not in declared and base not in declared:
                missing.add(name)
    assert not missing, f"not exposed by a node: {sorted(missing)}"


def test_every_label_they_group_or_match_on_exists(exposition):
    labels = set(re.findall(r"[{,]([a-z_]+)=\"", exposition)) | {"le", "job"}
    used = set()
    for expr in _expressions():
        for group in BY.findall(expr):
            used |= {label.strip() for label in group.split(",") if label.strip()}
        used |= set(MATCHER.findall(expr)) - FUNCTIONS
    assert used, "no label found: the patterns are wrong"
    assert used <= labels, f"labels no metric has: {sorted(used - labels)}"
    assert 'current_run_state="Paused"' in exposition  # the value the paused-runs alert matches


def test_every_expression_is_balanced_and_every_alert_has_a_runbook():
    for expr in _expressions():
        assert expr.count("(") == expr.count(")"), expr
        assert expr.count("{") == expr.count("}"), expr
    operations = (ROOT / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", operations, re.MULTILINE)
    }
    rules = yaml.safe_load((GRAFANA / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            runbook = rule["annotations"]["runbook"]
            assert runbook.startswith("docs/operations.md#"), rule["alert"]
            assert runbook.split("#", 1)[1] in anchors, f"{rule['alert']}: no section {runbook}"
