"""``actorflow demo``: a real order workflow over many runs, with progress and metrics."""

from __future__ import annotations

import dataclasses
import enum
import statistics
import sys
import threading
import time
from typing import Any

import actorflow as af
from actorflow._signals import stop_signals
from actorflow.backends import Backend, make_backend

__all__ = ["OrderStatus", "build_demo_workflow", "run_demo"]

_PROGRESS_EVERY = 0.5  # seconds between progress lines


class OrderStatus(enum.IntEnum):
    """Where an order is."""

    CREATED = 1
    VALIDATED = 2
    PAID = 3
    PACKED = 4
    SHIPPED = 5


@dataclasses.dataclass
class Order:
    """The demo's object: one customer order."""

    id: str = ""
    items: int = 1
    amount_cents: int = 0
    payment_ref: str = ""
    parcel: str = ""


def validate(run: af.Run[Order, OrderStatus]) -> OrderStatus:
    """Price the order."""
    run.object.amount_cents = 1250 * run.object.items
    return OrderStatus.VALIDATED


def charge(run: af.Run[Order, OrderStatus]) -> OrderStatus:
    """Take the payment (idempotent: the reference is derived from the run)."""
    run.object.payment_ref = f"pay-{run.run_id[:8]}"
    return OrderStatus.PAID


def pack(run: af.Run[Order, OrderStatus]) -> OrderStatus:
    """Pack the parcel."""
    run.object.parcel = f"parcel-{run.object.id}"
    return OrderStatus.PACKED


def ship(_run: af.Run[Order, OrderStatus]) -> OrderStatus:
    """Hand it to the carrier."""
    return OrderStatus.SHIPPED


class _Progress:
    """Counts completed orders (from the on_complete hook) and their latencies."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.done = 0
        self.latencies: list[float] = []

    def on_complete(self, record: af.TypedRecord[Order, OrderStatus]) -> None:
        with self.cond:
            self.done += 1
            self.latencies.append((record.updated_at - record.created_at).total_seconds())
            self.cond.notify_all()


def build_demo_workflow(adapters: Backend) -> tuple[af.Workflow[Order, OrderStatus], Any]:
    """The demo's order workflow on the given adapters, and its progress counter."""
    progress = _Progress()
    b = af.Builder("demo-orders", Order, OrderStatus)
    b.add_step(OrderStatus.CREATED, validate, OrderStatus.VALIDATED)
    b.add_step(OrderStatus.VALIDATED, charge, OrderStatus.PAID).with_options(parallel_count=2)
    b.add_step(OrderStatus.PAID, pack, OrderStatus.PACKED)
    b.add_step(OrderStatus.PACKED, ship, OrderStatus.SHIPPED)
    b.on_complete(progress.on_complete)
    wf = b.build(
        adapters.event_streamer,
        adapters.record_store,
        adapters.role_scheduler,
        timeout_store=adapters.timeout_store,
        defaults=af.Options(err_backoff=0.1),
    )
    return wf, progress


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_demo(
    *,
    runs: int = 2000,
    metrics_port: int = 0,
    serve: bool = False,
    backend: str = "sqlite",
    path: str | None = None,
    dsn: str | None = None,
    bootstrap_servers: str | None = None,
) -> int:
    """Process ``runs`` orders through four steps; exit code 0 when every run completed.

    On the ``sqlite`` backend (the default) the runs are stored in ``path``, or in a
    temporary file removed at the end when no path is given.
    """
    out = sys.stdout
    adapters = make_backend(backend, path=path, dsn=dsn, bootstrap_servers=bootstrap_servers)
    wf, progress = build_demo_workflow(adapters)
    supervisor = af.Supervisor([wf], metrics_port=metrics_port)
    supervisor.start()
    try:
        out.write(f"actorflow demo: {runs} orders through 4 steps on the {backend} backend\n")
        if adapters.location:
            kept = "" if path or backend != "sqlite" else " (temporary: removed at the end; --path keeps one)"
            out.write(f"database: {adapters.location}{kept}\n")
        out.write(f"metrics: http://127.0.0.1:{supervisor.metrics_port}/metrics (health: /healthz)\n")
        out.flush()  # where to look, before the first order is placed
        started = time.perf_counter()

        def report(placed: int) -> None:
            now = time.perf_counter()
            rate = progress.done * 4 / max(now - started, 1e-9)
            being_placed = "" if placed >= runs else f", {placed}/{runs} placed"
            out.write(f"  {progress.done:>6}/{runs} orders shipped{being_placed}  ({rate:,.0f} transitions/s)\n")
            out.flush()

        # Progress from the first second: the orders are shipped while they are placed.
        last_print = started
        for i in range(runs):
            wf.trigger(f"order-{i}", Order(id=f"order-{i}", items=1 + i % 5))
            if time.perf_counter() - last_print >= _PROGRESS_EVERY:
                last_print = time.perf_counter()
                report(i + 1)
        with progress.cond:
            while progress.done < runs:
                progress.cond.wait(_PROGRESS_EVERY)
                now = time.perf_counter()
                if now - last_print >= _PROGRESS_EVERY or progress.done >= runs:
                    last_print = now
                    report(runs)
        elapsed = time.perf_counter() - started
        latencies = progress.latencies
        out.write(
            f"done: {runs} runs, {runs * 4} transitions in {elapsed:.2f}s "
            f"= {runs * 4 / elapsed:,.0f} transitions/s; "
            f"trigger-to-complete p50 {statistics.median(latencies) * 1000:.1f} ms, "
            f"p99 {_percentile(latencies, 0.99) * 1000:.1f} ms (under load)\n"
        )
        out.flush()
        if serve:
            with stop_signals() as stop:  # before saying so: a Ctrl-C sent at once is not missed
                out.write("serving metrics until Ctrl-C\n")
                out.flush()
                stop.wait()
    finally:
        supervisor.stop()
        adapters.close()
    return 0
