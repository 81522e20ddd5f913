"""``actorflow bench``: throughput on a backlog and latency on single runs, appended to BENCHMARKS.md.

Two loads, measured separately (they answer different questions):

* throughput: ``runs`` runs of a 3-step workflow are triggered while no node runs it (a
  backlog), then a node starts and the clock runs until the last run completed;
  transitions/s = 3 x runs / elapsed.
* latency: ``latency_runs`` single runs one after another, each timed from `trigger`
  to `await_status` returning at the terminal status (p50, p99).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import actorflow as af
from actorflow.backends import Backend, make_backend

__all__ = ["BenchObject", "BenchResult", "BenchStatus", "run_bench", "three_steps"]


class BenchStatus(enum.IntEnum):
    """The benchmark workflow's statuses: three steps."""

    STARTED = 1
    FIRST = 2
    SECOND = 3
    DONE = 4


@dataclasses.dataclass
class BenchObject:
    """A small object, like a typical run's."""

    id: str = ""
    counter: int = 0
    note: str = ""


def three_steps(
    name: str, *, wait: float = 0.0, asynchronous: bool = False, **options: Any
) -> af.Builder[BenchObject, BenchStatus]:
    """The benchmarks' workflow: STARTED -> FIRST -> SECOND -> DONE, each step adding 1 to ``counter``.

    ``wait``: seconds each step first sleeps, as a call to another service would take
    (``asynchronous``: ``async def`` steps that await it on the engine's loop);
    ``options`` go to every step (``parallel_count``, ``max_in_flight``...).
    """

    def step(to: BenchStatus) -> Callable[[af.Run[BenchObject, BenchStatus]], Any]:
        if asynchronous:

            async def run_async(r: af.Run[BenchObject, BenchStatus]) -> BenchStatus:
                if wait:
                    await asyncio.sleep(wait)  # the call the step makes, awaited
                r.object.counter += 1
                return to

            return run_async

        def run(r: af.Run[BenchObject, BenchStatus]) -> BenchStatus:
            if wait:
                time.sleep(wait)  # the call the step makes
            r.object.counter += 1
            return to

        return run

    b = af.Builder(name, BenchObject, BenchStatus)
    for frm, to in (
        (BenchStatus.STARTED, BenchStatus.FIRST),
        (BenchStatus.FIRST, BenchStatus.SECOND),
        (BenchStatus.SECOND, BenchStatus.DONE),
    ):
        spec = b.add_step(frm, step(to), to)
        if options:
            spec.with_options(**options)
    return b


@dataclasses.dataclass(frozen=True)
class BenchResult:
    """What one benchmark run measured."""

    backend: str
    runs: int
    seconds: float
    transitions_per_second: float
    latency_runs: int
    p50_ms: float
    p99_ms: float
    stores: str = ""  # where events and records were kept, when the backend name does not say
    flags: str = ""  # the server flags of the command, with their values left out


def _stores(backend: str, dsn: str | None) -> str:
    if backend == "kafka":
        if not dsn:
            return "events on Kafka; records and timeouts in SQLite (a temporary file)"
        server = "MySQL/MariaDB" if dsn.strip().lower().startswith("mysql") else "PostgreSQL"
        return f"events on Kafka; records and timeouts in {server}"
    if backend == "postgres":
        return "records, events and timeouts in one PostgreSQL schema: one commit per transition"
    if backend == "mysql":
        return "records, events and timeouts in one MySQL/MariaDB database: one commit per transition"
    if backend == "sqlite":
        return "records, events and timeouts in one SQLite file (WAL, synchronous=FULL)"
    return ""


def _workflow(
    name: str, backend: str, dsn: str | None, bootstrap_servers: str | None = None
) -> tuple[af.Workflow[BenchObject, BenchStatus], Backend]:
    b = three_steps(name)
    adapters = make_backend(backend, dsn=dsn, bootstrap_servers=bootstrap_servers)
    return b.build(adapters.event_streamer, adapters.record_store, adapters.role_scheduler), adapters


def measure_throughput(
    runs: int, backend: str = "memory", dsn: str | None = None, bootstrap_servers: str | None = None
) -> tuple[float, float]:
    """Seconds to drain a backlog of ``runs`` runs, and transitions per second.

    The clock stops when the engine has counted ``runs`` completions (its
    ``workflow_run_state_changes``, counted after each commit): awaiting each run inside
    the timed window cost the engine's threads about a quarter of the interpreter. Every
    run is then checked to be at its last status, outside the window.
    """
    wf, adapters = _workflow("bench-throughput", backend, dsn, bootstrap_servers)
    counter = wf.metrics.run_state_changes
    labels = (wf.name, str(af.RunState.RUNNING), str(af.RunState.COMPLETED))
    try:
        ids = [(f"t-{i}", wf.trigger(f"t-{i}", BenchObject(id=str(i)))) for i in range(runs)]
        before = counter.value(*labels)  # the registry may hold an earlier bench's counts
        started = time.perf_counter()
        wf.run()
        try:
            deadline = started + 600
            while counter.value(*labels) - before < runs:
                if time.perf_counter() > deadline:
                    msg = f"the backlog of {runs} runs did not drain within 600 s"
                    raise TimeoutError(msg)
                time.sleep(0.002)
            elapsed = time.perf_counter() - started
            for foreign_id, run_id in ids:
                wf.await_status(foreign_id, run_id, BenchStatus.DONE, timeout=60)
        finally:
            wf.stop()
    finally:
        adapters.close()  # connections, client threads, a temporary database
    return elapsed, 3 * runs / elapsed


def measure_latency(
    runs: int, backend: str = "memory", dsn: str | None = None, bootstrap_servers: str | None = None
) -> list[float]:
    """Trigger-to-complete seconds of ``runs`` single runs, one after another."""
    wf, adapters = _workflow("bench-latency", backend, dsn, bootstrap_servers)
    samples: list[float] = []
    try:
        wf.run()
        try:
            for i in range(runs):
                started = time.perf_counter()
                run_id = wf.trigger(f"l-{i}", BenchObject(id=str(i)))
                wf.await_status(f"l-{i}", run_id, BenchStatus.DONE, timeout=60)
                samples.append(time.perf_counter() - started)
        finally:
            wf.stop()
    finally:
        adapters.close()
    return samples


def _machine() -> str:
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}"


def run_bench(
    *,
    runs: int = 10_000,
    latency_runs: int = 1000,
    backend: str = "memory",
    output: str | None = "BENCHMARKS.md",
    dsn: str | None = None,
    bootstrap_servers: str | None = None,
) -> int:
    """Measure, print the figures, and append them to ``output`` (``-`` or None: don't)."""
    out = sys.stdout
    stores = _stores(backend, dsn)
    out.write(f"actorflow bench: backend={backend}, 3-step workflow{f' ({stores})' if stores else ''}\n")
    out.write(f"throughput: {runs} runs as a backlog ...\n")
    out.flush()
    seconds, rate = measure_throughput(runs, backend, dsn, bootstrap_servers)
    out.write(f"  {3 * runs} transitions in {seconds:.2f}s = {rate:,.0f} transitions/s\n")
    out.write(f"latency: {latency_runs} single runs, one after another ...\n")
    out.flush()
    samples = sorted(measure_latency(latency_runs, backend, dsn, bootstrap_servers))
    p50 = statistics.median(samples) * 1000
    p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))] * 1000
    out.write(f"  trigger-to-complete p50 {p50:.2f} ms, p99 {p99:.2f} ms\n")
    # Server addresses (and any password in a DSN) stay out of the file: only the flags.
    # A DSN only where the backend uses one (memory and SQLite ignore an ACTORFLOW_DSN set).
    uses_dsn = backend in ("postgres", "mysql", "kafka")
    flags = (" --dsn DSN" if dsn and uses_dsn else "") + (" --bootstrap-servers HOST:PORT" if bootstrap_servers else "")
    result = BenchResult(backend, runs, seconds, rate, latency_runs, p50, p99, stores, flags)
    if output and output != "-":
        _append(output, result)
        out.write(f"appended to {output}\n")
    return 0


def _append(path: str, result: BenchResult) -> None:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = (
        f"actorflow bench --backend {result.backend} --runs {result.runs} --latency-runs {result.latency_runs}"
        f"{result.flags}"
    )
    new = not os.path.exists(path)  # noqa: PTH110 - a plain existence check
    with open(path, "a", encoding="utf-8") as fh:  # noqa: PTH123
        if new:
            fh.write("# Benchmarks\n\nFigures appended by `actorflow bench` (see benchmarks/README.md).\n")
        stores = f"- stores: {result.stores}\n" if result.stores else ""
        fh.write(
            f"\n## {when}: {result.backend}\n\n"
            f"- machine: {_machine()}\n"
            f"- command: `{command}`\n"
            f"{stores}"
            f"- throughput: {3 * result.runs} transitions ({result.runs} runs x 3 steps) in {result.seconds:.2f} s"
            f" = **{result.transitions_per_second:,.0f} transitions/s**\n"
            f"- latency (single runs, trigger to complete): p50 **{result.p50_ms:.2f} ms**,"
            f" p99 {result.p99_ms:.2f} ms\n"
        )
