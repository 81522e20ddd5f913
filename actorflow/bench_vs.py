"""``actorflow bench --vs dbos``: actorflow and DBOS Transact, the same work on the same PostgreSQL.

Both engines run the same 3-step workflow (each step adds 1 to a counter; in the "io"
load each step first waits ``IO_WAIT`` seconds, as an HTTP call would), one engine after
the other, each in a fresh child process (so neither warms the other's caches and the
memory figure is the node's own), on its own schema of the same database:

* single runs: ``single`` runs one after another, each timed from the trigger to the run
  being durably complete (p50/p95/p99);
* load: ``runs`` runs triggered one after another from one thread while the node runs;
  throughput is runs (and steps) over the time from the first trigger to the last run
  durably complete, and each run's trigger-to-complete latency is kept (p50/p95/p99);
* memory: the child's peak resident set size.

"Durably complete" is taken as favourably to DBOS as its API allows: the end of the
workflow function (DBOS then writes its status), against the return of actorflow's commit
of the final record. Concurrency is each engine's default: DBOS runs each workflow on a
thread of its own; actorflow runs ``parallel_count`` shards a step with the default
``max_in_flight``. DBOS comes from the ``bench`` extra (``pip install 'actorflow[bench]'``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["LOADS", "run_vs"]

IO_WAIT = 0.020
# load name -> (seconds each step waits, runs in the load)
LOADS: dict[str, tuple[float, int]] = {"instant": (0.0, 2000), "io": (IO_WAIT, 300), "async-io": (IO_WAIT, 300)}
ASYNC_LOADS = frozenset({"async-io"})  # async def steps (and DBOS's async workflows)
WARMUP = 20


@dataclasses.dataclass
class Figures:
    """What one engine did on one load (the child prints it as JSON)."""

    engine: str
    load: str
    runs: int
    seconds: float
    single_ms: list[float]
    load_ms: list[float]
    peak_rss_mb: float
    version: str

    @property
    def runs_per_second(self) -> float:
        return self.runs / self.seconds

    @property
    def steps_per_second(self) -> float:
        return 3 * self.runs / self.seconds


def _percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class _Completions:
    """When each run became durably complete, by the key its trigger returned."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self._cond = threading.Condition()

    def note(self, keys: Sequence[str]) -> None:
        now = time.perf_counter()
        with self._cond:
            for key in keys:
                self.at[key] = now
            self._cond.notify_all()

    def wait(self, keys: Sequence[str]) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: all(k in self.at for k in keys), timeout=600):
                msg = "runs did not complete within 10 minutes"
                raise RuntimeError(msg)


def _measure(trigger: Callable[[str], str], done: _Completions, runs: int, single: int) -> tuple[Any, ...]:
    """Warm up, time ``single`` runs one at a time, then ``runs`` triggered back to back.

    Returns (seconds of the load, single-run ms, under-load ms).
    """
    done.wait([trigger(f"w-{i}") for i in range(WARMUP)])
    single_ms = []
    for i in range(single):
        started = time.perf_counter()
        key = trigger(f"s-{i}")
        done.wait([key])
        single_ms.append((done.at[key] - started) * 1000)
    triggered: dict[str, float] = {}
    first = time.perf_counter()
    for i in range(runs):
        at = time.perf_counter()
        triggered[trigger(f"l-{i}")] = at
    done.wait(list(triggered))
    seconds = max(done.at[k] for k in triggered) - first
    return seconds, single_ms, [(done.at[k] - at) * 1000 for k, at in triggered.items()]


# -- actorflow's side -------------------------------------------------------------------------


def _actorflow(load: str, dsn: str, schema: str, runs: int, single: int, parallel: int) -> Figures:
    import actorflow as af  # noqa: PLC0415 - the child's own import
    from actorflow.bench import BenchObject, BenchStatus, three_steps  # noqa: PLC0415

    # By name, as the core imports adapters (actorflow.backends).
    memory = importlib.import_module("actorflow.adapters.memory")
    postgres = importlib.import_module("actorflow.adapters.postgres")
    wait = LOADS[load][0]
    done = _Completions()
    streamer, store = (
        postgres.PostgresEventStreamer(dsn, schema=schema),
        postgres.PostgresRecordStore(dsn, schema=schema),
    )
    commit = store.store_many

    def store_many(records: Any, **kwargs: Any) -> Any:
        """The store's own, noting each run whose final record it committed (the call has returned)."""
        records = list(records)
        results = commit(records, **kwargs)
        done.note(
            [r.run_id for r, e in zip(records, results, strict=True) if e is None and r.status == BenchStatus.DONE]
        )
        return results

    store.store_many = store_many

    builder = three_steps("vs", wait=wait, asynchronous=load in ASYNC_LOADS, parallel_count=parallel)
    wf = builder.build(streamer, store, memory.MemoryRoleScheduler())
    wf.run()
    try:
        seconds, single_ms, load_ms = _measure(lambda key: wf.trigger(key, BenchObject(id=key)), done, runs, single)
    finally:
        wf.stop()
        streamer.close()
        store.close()
    return Figures("actorflow", load, runs, seconds, single_ms, load_ms, _peak_rss_mb(), af.__version__)


# -- DBOS's side ------------------------------------------------------------------------------


def _dbos(load: str, dsn: str, schema: str, runs: int, single: int) -> Figures:
    from importlib.metadata import version  # noqa: PLC0415

    from dbos import DBOS, DBOSConfig  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415

    wait = LOADS[load][0]
    done = _Completions()

    def work(value: int) -> int:
        if wait:
            time.sleep(wait)  # the call the step makes
        return value + 1

    async def work_async(value: int) -> int:
        if wait:
            await asyncio.sleep(wait)  # the call the step makes, awaited
        return value + 1

    if load in ASYNC_LOADS:
        one_a = DBOS.step(name="one")(work_async)
        two_a = DBOS.step(name="two")(work_async)
        three_a = DBOS.step(name="three")(work_async)

        @DBOS.workflow(name="vs")  # type: ignore[untyped-decorator,unused-ignore]
        async def workflow_async(key: str) -> int:
            result: int = await three_a(await two_a(await one_a(0)))
            done.note([key])
            return result

        loop = asyncio.new_event_loop()  # DBOS's async workflows start from a running loop
        threading.Thread(target=loop.run_forever, name="dbos-loop", daemon=True).start()

        def trigger(key: str) -> str:
            asyncio.run_coroutine_threadsafe(DBOS.start_workflow_async(workflow_async, key), loop).result()
            return key

    else:
        step_one = DBOS.step(name="one")(work)
        step_two = DBOS.step(name="two")(work)
        step_three = DBOS.step(name="three")(work)

        @DBOS.workflow(name="vs")  # type: ignore[untyped-decorator,unused-ignore]
        def workflow(key: str) -> int:
            result: int = step_three(step_two(step_one(0)))
            done.note([key])  # the end of the workflow function: DBOS writes its status next
            return result

        def trigger(key: str) -> str:
            DBOS.start_workflow(workflow, key)
            return key

    config: DBOSConfig = {"name": "actorflow-vs", "system_database_url": dsn, "dbos_system_schema": schema}
    DBOS(config=config)
    DBOS.launch()
    try:
        seconds, single_ms, load_ms = _measure(trigger, done, runs, single)
    finally:
        DBOS.destroy(workflow_completion_timeout_sec=10)
    return Figures("dbos", load, runs, seconds, single_ms, load_ms, _peak_rss_mb(), version("dbos"))


# -- the driver -------------------------------------------------------------------------------


def _schema() -> str:
    return f"vs_{uuid.uuid4().hex[:10]}"


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg  # noqa: PLC0415

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _child(engine: str, load: str, dsn: str, runs: int, single: int, parallel: int) -> Figures:
    """Run one engine on one load in a fresh process; its figures."""
    schema = _schema()
    command = [sys.executable, "-m", "actorflow.bench_vs", engine, load, dsn, schema, str(runs), str(single)]
    command.append(str(parallel))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)  # noqa: S603
    finally:
        _drop_schema(dsn, schema)
    if done.returncode != 0:
        msg = f"{engine} on the {load} load failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
        raise RuntimeError(msg)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return Figures(**figures)


def _spread(samples: Sequence[float], digits: int) -> str:
    return " / ".join(f"{_percentile(samples, q):.{digits}f}" for q in (0.5, 0.95, 0.99))


def _row(f: Figures) -> str:
    return (
        f"| {f.engine} {f.version} | {f.load} | {f.runs} | {f.runs_per_second:,.0f} | {f.steps_per_second:,.0f} "
        f"| {_spread(f.single_ms, 1)} | {_spread(f.load_ms, 0)} | {f.peak_rss_mb:.0f} |"
    )


HEADER = (
    "| engine | load | runs | runs/s | steps/s | single run ms p50 / p95 / p99 | under load ms p50 / p95 / p99 "
    "| peak RSS MB |\n|---|---|---|---|---|---|---|---|"
)


def run_vs(
    *,
    dsn: str,
    loads: Sequence[str] = tuple(LOADS),
    single: int = 200,
    parallel: int = 4,
    runs: int | None = None,
    output: str | None = "BENCHMARKS.md",
) -> int:
    """Measure both engines on each load, print the table and the ratios, append them to ``output``."""
    try:
        import dbos  # type: ignore[import-not-found,unused-ignore]  # noqa: F401, PLC0415
    except ImportError:
        sys.stderr.write("actorflow bench --vs dbos needs DBOS: pip install 'actorflow[bench]'\n")
        return 2
    out = sys.stdout
    results: list[tuple[Figures, Figures]] = []
    for load in loads:
        count = runs if runs is not None else LOADS[load][1]
        out.write(f"{load} steps, {count} runs: DBOS ...\n")
        out.flush()
        theirs = _child("dbos", load, dsn, count, single, parallel)
        out.write(f"{load} steps, {count} runs: actorflow ...\n")
        out.flush()
        ours = _child("actorflow", load, dsn, count, single, parallel)
        results.append((theirs, ours))
    table = [HEADER]
    ratios = []
    for theirs, ours in results:
        table += [_row(theirs), _row(ours)]
        speed = ours.steps_per_second / theirs.steps_per_second
        latency = _percentile(ours.single_ms, 0.5) / _percentile(theirs.single_ms, 0.5)
        ratios.append(
            f"- {ours.load} steps: actorflow/DBOS steps/s **{speed:.2f}x**; single-run p50 actorflow/DBOS"
            f" **{latency:.2f}x** (lower is better); peak memory {ours.peak_rss_mb / theirs.peak_rss_mb:.2f}x"
        )
    text = "\n".join(table) + "\n\n" + "\n".join(ratios) + "\n"
    out.write("\n" + text)
    if output and output != "-":
        when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}"
        command = f"actorflow bench --vs dbos --dsn DSN --parallel {parallel} --latency-runs {single}"
        with open(output, "a", encoding="utf-8") as fh:  # noqa: PTH123
            fh.write(
                f"\n## {when}: actorflow against DBOS Transact\n\n- machine: {machine}\n- command: `{command}`\n"
                f"- the same PostgreSQL server and database, a schema each; each engine in a fresh process;"
                f" steps wait {IO_WAIT * 1000:.0f} ms in the io load\n\n{text}"
            )
        out.write(f"appended to {output}\n")
    return 0


def main(argv: Sequence[str]) -> int:
    """The child: ``ENGINE LOAD DSN SCHEMA RUNS SINGLE PARALLEL``; prints its figures as JSON."""
    engine, load, dsn, schema, runs, single, parallel = argv
    if engine == "dbos":
        figures = _dbos(load, dsn, schema, int(runs), int(single))
    else:
        figures = _actorflow(load, dsn, schema, int(runs), int(single), int(parallel))
    sys.stdout.write(json.dumps(dataclasses.asdict(figures)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
