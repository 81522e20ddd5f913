"""OpenTelemetry tracing: a span per trigger, step, callback and timeout, one trace per run across nodes.

A producer and a node are two workflow objects with tracer providers of their own, on one
SQLite file: the only thing that links the node's spans to the producer's is what the
store carries (the trigger's ``traceparent``), as between two processes. Spans are
collected with the SDK's in-memory exporter.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the tracing tests need opentelemetry-sdk (the dev extra)")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler, MemoryTimeoutStore
from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore, SqliteTimeoutStore
from actorflow.otel import traceparent_of
from tests.model import FAST, Order, Status

pytestmark = pytest.mark.timeout(60)


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _builder(failed: set[str]) -> af.Builder[Order, Status]:
    """STARTED --charge (fails once)--> AWAITING --callback--> APPROVED --finish--> DONE; AWAITING times out for t-*."""

    def charge(run: af.Run[Order, Status]) -> Status:
        if run.foreign_id not in failed:
            failed.add(run.foreign_id)
            raise RuntimeError("card declined, try again")
        return Status.AWAITING

    def timer(run: af.Run[Order, Status], now: Any) -> Any:
        return now if run.foreign_id.startswith("t-") else None

    b = af.Builder("traced", Order, Status)
    b.add_step(Status.STARTED, charge, Status.AWAITING)
    b.add_callback(Status.AWAITING, lambda run, payload: Status.APPROVED, Status.APPROVED)
    b.add_timeout(Status.AWAITING, timer, lambda run, now: Status.EXPIRED, Status.EXPIRED)
    b.add_step(Status.APPROVED, lambda run: Status.DONE, Status.DONE)
    return b


def _build(path: Path, opened, provider: Any, failed: set[str]) -> af.Workflow[Order, Status]:
    adapters = [opened(SqliteEventStreamer(path)), opened(SqliteRecordStore(path)), opened(SqliteTimeoutStore(path))]
    return _builder(failed).build(
        adapters[0], adapters[1], MemoryRoleScheduler(), timeout_store=adapters[2], defaults=FAST, tracing=provider
    )


def _named(spans: list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name.startswith(prefix)]


def test_a_runs_steps_callback_and_timeout_on_a_node_join_the_trace_of_its_trigger(tmp_path, opened):
    producer_provider, producer_spans = _provider()
    node_provider, node_spans = _provider()
    failed: set[str] = set()
    producer = _build(tmp_path / "traced.db", opened, producer_provider, failed)
    node = _build(tmp_path / "traced.db", opened, node_provider, failed)

    request = producer_provider.get_tracer("myservice").start_as_current_span("POST /orders", kind=SpanKind.SERVER)
    with request as http:
        run_id = producer.trigger("o-1", Order(id="o-1"))
        timed = producer.trigger("t-1", Order(id="t-1"))
    node.run()
    try:
        producer.await_status("o-1", run_id, Status.AWAITING, timeout=10)
        producer.callback("o-1", Status.AWAITING, b"{}")
        node.await_status("o-1", run_id, Status.DONE, timeout=10)
        node.await_status("t-1", timed, Status.EXPIRED, timeout=10)
    finally:
        node.stop()

    trace_id = http.get_span_context().trace_id
    (trigger, timed_trigger) = _named(list(producer_spans.get_finished_spans()), "trigger traced")
    assert trigger.parent is not None
    assert trigger.parent.span_id == http.get_span_context().span_id
    assert trigger.context.trace_id == trace_id
    assert trigger.attributes["actorflow.foreign_id"] == "o-1"
    assert traceparent_of(producer.record_store.lookup(run_id).meta.trace_origin) is not None

    spans = list(node_spans.get_finished_spans())
    charges = [s for s in _named(spans, "step traced Started") if s.attributes["actorflow.run_id"] == run_id]
    assert len(charges) == 2  # the failure, then the success
    for span in charges:
        assert span.context.trace_id == trace_id  # the node's spans are in the producer's trace
        assert span.parent is not None
        assert span.parent.span_id == trigger.context.span_id
        assert span.kind is SpanKind.CONSUMER
        assert span.attributes["actorflow.foreign_id"] == "o-1"
    failed_span, ok_span = sorted(charges, key=lambda s: s.start_time)
    assert failed_span.status.status_code is StatusCode.ERROR
    assert [event.name for event in failed_span.events] == ["exception"]
    assert "card declined" in failed_span.status.description
    assert ok_span.attributes["actorflow.next_status"] == "Awaiting"

    (callback,) = _named(list(producer_spans.get_finished_spans()), "callback traced Awaiting")
    assert (callback.context.trace_id, callback.attributes["actorflow.next_status"]) == (trace_id, "Approved")
    (finish,) = _named(spans, "step traced Approved")
    assert finish.context.trace_id == trace_id

    (timeout,) = _named(spans, "timeout traced Awaiting")
    assert timeout.context.trace_id == timed_trigger.context.trace_id == trace_id  # triggered in the same request
    assert timeout.attributes["actorflow.run_id"] == timed
    assert timeout.attributes["actorflow.next_status"] == "Expired"


def test_a_workflow_is_not_traced_unless_asked(tmp_path, opened):
    provider, spans = _provider()
    failed = {"u-1"}
    path = tmp_path / "u.db"
    streamer, store, timeouts = (
        opened(SqliteEventStreamer(path)),
        opened(SqliteRecordStore(path)),
        opened(SqliteTimeoutStore(path)),
    )
    wf = _builder(failed).build(streamer, store, MemoryRoleScheduler(), timeout_store=timeouts)
    with provider.get_tracer("t").start_as_current_span("outer"):
        run_id = wf.trigger("u-1", Order(id="u-1"))
    assert traceparent_of(wf.record_store.lookup(run_id).meta.trace_origin) is None
    assert [s.name for s in spans.get_finished_spans()] == ["outer"]


def test_tracing_without_opentelemetry_is_a_build_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "actorflow.otel", None)  # as if the otel extra were not installed
    with pytest.raises(af.BuildError, match=r'pip install "actorflow\[otel\]"'):
        _builder(set()).build(*_memory(), timeout_store=MemoryTimeoutStore(), tracing=True)


def _memory() -> tuple[Any, Any, Any]:
    return MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler()


def test_concurrent_steps_each_get_their_own_span(tmp_path, opened):
    provider, spans = _provider()
    failed = {f"c-{i}" for i in range(20)}  # no failures: every charge succeeds at once
    wf = _build(tmp_path / "c.db", opened, provider, failed)
    ids = [wf.trigger(f"c-{i}", Order(id=f"c-{i}")) for i in range(20)]
    wf.run()
    try:
        for i, run_id in enumerate(ids):
            wf.await_status(f"c-{i}", run_id, Status.AWAITING, timeout=10)
    finally:
        wf.stop()
    steps = _named(list(spans.get_finished_spans()), "step traced Started")
    assert sorted(s.attributes["actorflow.run_id"] for s in steps) == sorted(ids)
    triggers = {s.attributes["actorflow.foreign_id"]: s for s in _named(list(spans.get_finished_spans()), "trigger")}
    for step in steps:
        assert step.parent.span_id == triggers[step.attributes["actorflow.foreign_id"]].context.span_id
