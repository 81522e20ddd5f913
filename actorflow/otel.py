"""OpenTelemetry tracing (the ``otel`` extra): a span per trigger, step, callback and timeout, one trace per run.

Turned on per workflow with ``build(..., tracing=True)`` (the global tracer provider) or
``tracing=provider``. A trigger opens a span (a child of whatever span the caller is in,
say an HTTP request) and stores its W3C ``traceparent`` with the run, on the last line of
``meta.trace_origin`` (so every store and every node carries it: no schema change). Each
step, callback and timeout function then runs in a span whose parent is that trigger
span, on whichever node runs it: the run's whole life is one trace.

Spans carry ``actorflow.workflow``, ``actorflow.run_id``, ``actorflow.foreign_id``,
``actorflow.status`` (the status's name), ``actorflow.version`` and, when the function
moved the run, ``actorflow.next_status``; a function that raised records the exception
and sets the span's status to error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from actorflow._version import VERSION
from actorflow.record import Record

__all__ = ["TRACEPARENT", "Tracing", "traceparent_of", "with_traceparent"]

TRACEPARENT = "traceparent="
"""How the trigger's context is written on the last line of ``meta.trace_origin``."""

_PROPAGATOR = TraceContextTextMapPropagator()


def with_traceparent(origin: str, traceparent: str) -> str:
    """``origin`` (the trigger's stack summary) with the trigger span's ``traceparent`` as its last line."""
    return f"{origin}\n{TRACEPARENT}{traceparent}" if origin else f"{TRACEPARENT}{traceparent}"


def traceparent_of(origin: str) -> str | None:
    """The ``traceparent`` a run was triggered under, or ``None`` when it was not traced."""
    last = origin.rpartition("\n")[2]
    return last.removeprefix(TRACEPARENT) if last.startswith(TRACEPARENT) else None


class Tracing:
    """A workflow's tracer (see the module docstring)."""

    def __init__(self, provider: Any = None) -> None:
        source = provider if provider is not None else trace.get_tracer_provider()
        self.tracer = source.get_tracer("actorflow", VERSION)

    stamp = staticmethod(with_traceparent)

    @contextlib.contextmanager
    def trigger(self, workflow: str, foreign_id: str | None) -> Iterator[str]:
        """A span around a trigger (a child of the caller's current span); yields its ``traceparent``."""
        attributes = {"actorflow.workflow": workflow}
        if foreign_id is not None:
            attributes["actorflow.foreign_id"] = foreign_id
        with self.tracer.start_as_current_span(f"trigger {workflow}", kind=SpanKind.PRODUCER, attributes=attributes):
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            yield carrier.get("traceparent", "")

    @contextlib.contextmanager
    def function(self, kind: str, record: Record, status_name: str) -> Iterator[Span]:
        """A span around a user function (``kind``: step, callback, timeout) on ``record``, in the run's trace."""
        parent = traceparent_of(record.meta.trace_origin)
        context = _PROPAGATOR.extract({"traceparent": parent}) if parent else None
        attributes: dict[str, str | int] = {
            "actorflow.workflow": record.workflow_name,
            "actorflow.run_id": record.run_id,
            "actorflow.foreign_id": record.foreign_id,
            "actorflow.status": status_name,
            "actorflow.version": record.meta.version,
        }
        name = f"{kind} {record.workflow_name} {status_name}"
        with self.tracer.start_as_current_span(
            name, context=context, kind=SpanKind.CONSUMER, attributes=attributes, record_exception=False
        ) as span:
            yield span

    @staticmethod
    def outcome(span: Span, next_status: str | None, error: BaseException | None) -> None:
        """Record what the function came to: the status it moved the run to, or its error."""
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        elif next_status is not None:
            span.set_attribute("actorflow.next_status", next_status)
