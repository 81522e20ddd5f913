"""Prometheus metrics: the original's names and labels, plus the runtime's ``actorflow_*`` ones.

Metrics are registered once per registry, when a supervisor starts (never at import), so
many workflows and supervisors in one process share them without colliding. The
original's counters are exposed under their exact names (``workflow_process_error_count``,
not ``..._total``), so dashboards built for the Go library keep working.

prometheus_client writes a ``counter`` family as ``<name>_total``; so these are collected
as untyped, and the node's own endpoint (`exposition`) writes their ``# TYPE`` line as
``counter``, as the Go client does (the text format allows a counter without the suffix).
A registry served by another exposition sees them untyped, under the same names.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = ["EXACT_COUNTERS", "Metrics", "ProcessMetrics", "exposition", "metrics_for"]

# The original's counters, exposed under their exact names (see the module docstring).
EXACT_COUNTERS = ("workflow_process_error_count", "workflow_process_skipped_events_count", "workflow_run_state_changes")
_UNTYPED = {f"# TYPE {name} untyped\n".encode(): f"# TYPE {name} counter\n".encode() for name in EXACT_COUNTERS}


def exposition(registry: CollectorRegistry) -> bytes:
    """The Prometheus text of ``registry``, with the original's counters typed ``counter``."""
    text = generate_latest(registry)
    for untyped, typed in _UNTYPED.items():
        text = text.replace(untyped, typed)
    return text


_WF_PROC = ("workflow_name", "process_name")


class _ExactCounter(Collector):
    """A monotonic counter exposed under its exact name (no ``_total`` suffix added)."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]) -> None:
        self._name = name
        self._doc = documentation
        self._labelnames = labelnames
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        with self._lock:
            return self._values.get(labels, 0.0)

    def collect(self) -> Iterator[Metric]:
        metric = Metric(self._name, self._doc, "unknown")
        with self._lock:
            items = list(self._values.items())
        for labels, value in items:
            metric.add_sample(self._name, dict(zip(self._labelnames, labels, strict=True)), value)
        yield metric


class Metrics:
    """Every metric of one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.process_lag = Gauge(
            "workflow_process_lag_seconds",
            "Age of the event a process is handling",
            _WF_PROC,
            registry=registry,
        )
        self.process_lag_alert = Gauge(
            "workflow_process_lag_alert",
            "1 when a process's lag is over its lag alert",
            _WF_PROC,
            registry=registry,
        )
        self.process_states = Gauge(
            "workflow_process_states",
            "State of a process: 0 unknown, 1 shutdown, 2 running, 3 idle, 4 failed",
            _WF_PROC,
            registry=registry,
        )
        self.process_latency = Histogram(
            "workflow_process_latency_seconds",
            "Time a process took to handle one event",
            _WF_PROC,
            buckets=(0.01, 0.1, 1, 5, 10, 60, 300),
            registry=registry,
        )
        self.process_errors = _ExactCounter("workflow_process_error_count", "Errors of a process", _WF_PROC)
        self.skipped_events = _ExactCounter(
            "workflow_process_skipped_events_count",
            "Events a process skipped, by reason",
            (*_WF_PROC, "reason"),
        )
        self.run_state_changes = _ExactCounter(
            "workflow_run_state_changes",
            "Run-state changes of runs",
            ("workflow_name", "previous_run_state", "current_run_state"),
        )
        for collector in (self.process_errors, self.skipped_events, self.run_state_changes):
            registry.register(collector)
        self.actor_restarts = Counter(
            "actorflow_actor_restarts",
            "Restarts of a process's actor after it crashed",
            _WF_PROC,
            registry=registry,
        )
        self.process_failed = Gauge(
            "actorflow_process_failed",
            "1 when a process crashed more often than its restart intensity allows",
            _WF_PROC,
            registry=registry,
        )
        self.roles_held = Gauge(
            "actorflow_roles_held",
            "Roles this node holds, per workflow",
            ("workflow_name", "node_id"),
            registry=registry,
        )
        self.claim_errors = Counter(
            "actorflow_role_claim_errors",
            "Calls to a role scheduler (claim, renew, heartbeat) that failed",
            ("node_id",),
            registry=registry,
        )
        self.fenced_writes = Counter(
            "actorflow_fenced_writes",
            "Writes refused because the role had passed to another node (its work is redone there)",
            _WF_PROC,
            registry=registry,
        )
        self.malformed_events = Counter(
            "actorflow_malformed_events",
            "Events that could not be parsed and were skipped",
            _WF_PROC,
            registry=registry,
        )
        self.corrupt_records = Counter(
            "actorflow_corrupt_records",
            "Stored runs a process could not read (an undecodable object, a status not in the workflow)",
            _WF_PROC,
            registry=registry,
        )

    def process(self, workflow_name: str, process_name: str) -> ProcessMetrics:
        """The metrics of one process, with label children resolved once."""
        return ProcessMetrics(self, workflow_name, process_name)


class ProcessMetrics:
    """A process's metrics with their label children cached (hot path)."""

    def __init__(self, metrics: Metrics, workflow_name: str, process_name: str) -> None:
        labels = (workflow_name, process_name)
        self._metrics = metrics
        self._labels = labels
        self.lag = metrics.process_lag.labels(*labels)
        self.lag_alert = metrics.process_lag_alert.labels(*labels)
        self.state = metrics.process_states.labels(*labels)
        self.latency = metrics.process_latency.labels(*labels)
        self.restarts = metrics.actor_restarts.labels(*labels)
        self.failed = metrics.process_failed.labels(*labels)
        self.malformed = metrics.malformed_events.labels(*labels)
        self.corrupt = metrics.corrupt_records.labels(*labels)
        self.fenced = metrics.fenced_writes.labels(*labels)

    def error(self) -> None:
        """Count one process error."""
        self._metrics.process_errors.inc(*self._labels)

    def skipped(self, reason: str) -> None:
        """Count one skipped event."""
        self._metrics.skipped_events.inc(*self._labels, reason)


_LOCK = threading.Lock()
_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, Metrics] = weakref.WeakKeyDictionary()


def metrics_for(registry: CollectorRegistry | None = None) -> Metrics:
    """The metrics of ``registry`` (the default one if ``None``), registered on first use."""
    reg = REGISTRY if registry is None else registry
    with _LOCK:
        found = _BY_REGISTRY.get(reg)
        if found is None:
            found = Metrics(reg)
            _BY_REGISTRY[reg] = found
        return found
