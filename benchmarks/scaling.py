"""Scaling curves: throughput against runs, ``parallel_count``, ``max_in_flight``; memory per run.

Usage::

    python benchmarks/scaling.py --dsn postgresql://postgres@127.0.0.1:5432/test [--output BENCHMARKS.md]

Needs the ``bench`` extra for the charts (matplotlib). Every figure is a backlog: the runs
are triggered while no node runs the workflow, then one node starts and the clock runs
until the last run completes (steps/s = 3 x runs / elapsed). Each point is one
measurement, taken one after another on this machine (2 cores, noisy): read the shape of a
curve and the ratios within one sitting, not one point against another day's.

Curves:

* runs: 1k, 10k, 100k runs in memory; 1k, 10k on SQLite and PostgreSQL (instant steps);
* ``parallel_count`` 1, 2, 4, 8 on PostgreSQL, instant steps and steps that wait 20 ms;
* ``max_in_flight`` 1, 4, 16, 32, 64 on PostgreSQL with steps that wait 20 ms;
* memory per completed run (100k runs in the memory store, resident set growth).

Writes ``benchmarks/charts/*.png`` and appends the tables to ``--output``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import actorflow as af
from actorflow.backends import make_backend
from actorflow.bench import BenchObject, BenchStatus, three_steps

CHARTS = Path(__file__).with_name("charts")
IO_WAIT = 0.020


def _workflow(backend: str, dsn: str | None, *, wait: float, parallel: int, in_flight: int | None) -> tuple[Any, Any]:
    options: dict[str, Any] = {"parallel_count": parallel}
    if in_flight is not None:
        options["max_in_flight"] = in_flight
    adapters = make_backend(backend, dsn=dsn)
    builder = three_steps("scaling", wait=wait, **options)
    return builder.build(adapters.event_streamer, adapters.record_store, adapters.role_scheduler), adapters


def backlog(
    backend: str, runs: int, dsn: str | None, *, wait: float = 0.0, parallel: int = 1, in_flight: int | None = None
) -> float:
    """Steps per second to drain a backlog of ``runs`` runs."""
    wf, adapters = _workflow(backend, dsn, wait=wait, parallel=parallel, in_flight=in_flight)
    try:
        ids = wf.trigger_many([(f"r-{i}", BenchObject(id=str(i))) for i in range(runs)])
        started = time.perf_counter()
        wf.run()
        try:
            for i, run_id in enumerate(ids):
                wf.await_status(f"r-{i}", run_id, BenchStatus.DONE, timeout=900)
            elapsed = time.perf_counter() - started
        finally:
            wf.stop()
    finally:
        adapters.close()
    return 3 * runs / elapsed


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:  # noqa: PTH123 - Linux only, as the machine
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_per_run(runs: int) -> tuple[float, float]:
    """(MB of resident memory the runs added, bytes per run) for ``runs`` completed runs in the memory store."""
    wf, adapters = _workflow("memory", None, wait=0.0, parallel=1, in_flight=None)
    gc.collect()
    before = _rss_mb()
    ids = wf.trigger_many([(f"m-{i}", BenchObject(id=str(i))) for i in range(runs)])
    wf.run()
    try:
        for i, run_id in enumerate(ids):
            wf.await_status(f"m-{i}", run_id, BenchStatus.DONE, timeout=900)
    finally:
        wf.stop()
    gc.collect()
    grown = _rss_mb() - before
    adapters.close()
    return grown, grown * 1024 * 1024 / runs


def _chart(name: str, title: str, xlabel: str, series: dict[str, list[tuple[int, float]]], *, log_x: bool) -> str:
    import matplotlib as mpl  # noqa: PLC0415 - the bench extra

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    for label, points in series.items():
        ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=label)
    if log_x:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("steps/s")
    ax.set_ylim(bottom=0)
    ax.grid(visible=True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    CHARTS.mkdir(exist_ok=True)
    path = CHARTS / f"{name}.png"
    fig.savefig(path)
    plt.close(fig)
    return f"benchmarks/charts/{path.name}"


def _table(header: str, series: dict[str, list[tuple[int, float]]]) -> str:
    xs = sorted({x for points in series.values() for x, _ in points})
    lines = [f"| {header} | " + " | ".join(f"{x:,}" for x in xs) + " |", "|---" * (len(xs) + 1) + "|"]
    for label, points in series.items():
        by_x = dict(points)
        lines.append(f"| {label} | " + " | ".join(f"{by_x[x]:,.0f}" if x in by_x else "" for x in xs) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Measure every curve, draw the charts, print the tables and append them to ``--output``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True, help="PostgreSQL DSN (a schema of its own per measurement)")
    parser.add_argument("--output", default="BENCHMARKS.md", help="file the tables are appended to ('-': none)")
    parser.add_argument("--big", type=int, default=100_000, help="the largest memory backlog (and memory run)")
    args = parser.parse_args(argv)
    out = sys.stdout

    def note(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    runs: dict[str, list[tuple[int, float]]] = {"memory": [], "sqlite": [], "postgres": []}
    sizes = (("memory", (1000, 10_000, args.big)), ("sqlite", (1000, 10_000)), ("postgres", (1000, 10_000)))
    for backend, counts in sizes:
        for count in counts:
            rate = backlog(backend, count, args.dsn)
            runs[backend].append((count, rate))
            note(f"runs: {backend} {count}: {rate:,.0f} steps/s")
    parallel: dict[str, list[tuple[int, float]]] = {"instant steps": [], "20 ms steps": []}
    for count in (1, 2, 4, 8):
        rate = backlog("postgres", 5000, args.dsn, parallel=count)
        parallel["instant steps"].append((count, rate))
        note(f"parallel_count {count}, instant: {rate:,.0f} steps/s")
        rate = backlog("postgres", 600, args.dsn, wait=IO_WAIT, parallel=count)
        parallel["20 ms steps"].append((count, rate))
        note(f"parallel_count {count}, 20 ms: {rate:,.0f} steps/s")
    in_flight: dict[str, list[tuple[int, float]]] = {"20 ms steps, parallel_count 1": []}
    for count in (1, 4, 16, 32, 64):
        rate = backlog("postgres", 600 if count > 1 else 100, args.dsn, wait=IO_WAIT, in_flight=count)
        in_flight["20 ms steps, parallel_count 1"].append((count, rate))
        note(f"max_in_flight {count}, 20 ms: {rate:,.0f} steps/s")
    grown, per_run = memory_per_run(args.big)
    note(f"memory: {args.big:,} completed runs in the memory store: +{grown:.0f} MB ({per_run:,.0f} B a run)")

    charts = [
        _chart("runs", "Backlog throughput against runs", "runs in the backlog", runs, log_x=True),
        _chart("parallel_count", "PostgreSQL: against parallel_count", "parallel_count", parallel, log_x=False),
        _chart("max_in_flight", "PostgreSQL, 20 ms steps: max_in_flight", "max_in_flight", in_flight, log_x=True),
    ]
    versions = f"actorflow {af.__version__}, psycopg {version('psycopg')}, Python {platform.python_version()}"
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} cpus"
    text = "\n\n".join(
        [
            "Steps per second draining a backlog (3 steps a run), one node:",
            _table("backend \\ runs", runs),
            "PostgreSQL, against `parallel_count` (5,000 runs of instant steps; 600 runs of 20 ms steps):",
            _table("steps \\ parallel_count", parallel),
            "PostgreSQL, 20 ms steps, against `max_in_flight` (600 runs; 100 at max_in_flight 1):",
            _table("steps \\ max_in_flight", in_flight),
            (
                f"Memory: {args.big:,} completed runs in the memory store add {grown:.0f} MB of resident memory"
                f" ({per_run:,.0f} bytes a run)."
            ),
            "Charts: " + ", ".join(f"![{Path(c).stem}]({c})" for c in charts),
        ]
    )
    out.write("\n" + text + "\n")
    if args.output != "-":
        when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        with open(args.output, "a", encoding="utf-8") as fh:  # noqa: PTH123
            fh.write(
                f"\n## {when}: scaling curves\n\n- machine: {machine}; {versions}\n"
                f"- command: `python benchmarks/scaling.py --dsn DSN --big {args.big}`\n\n{text}\n"
            )
        out.write(f"appended to {args.output}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
