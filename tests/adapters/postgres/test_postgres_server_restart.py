"""PostgreSQL restarted while runs are in flight: every run finishes, each transition stored once.

A real restart (``pg_ctl stop -m fast``, seconds of outage, ``pg_ctl start``) of a
throwaway cluster of this test's own, not ``pg_terminate_backend`` on a server that
stays up: during the outage no connection can be made at all. The cluster is this
module's own (`_pg_cluster`), on a free port; the shared server is not touched.

The second test is the outage seen from a caller: a trigger while the server is down
must fail with an `ActorflowError` within seconds, not wait for the server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.adapters.postgres import PostgresEventStreamer, PostgresRecordStore, PostgresTimeoutStore
from actorflow.processes.consumer import BATCH_SIZE
from tests.adapters.postgres._pg_cluster import Cluster, throwaway_cluster
from tests.model import Item, Stage, three_steps

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(180)]

RUNS = 200
OUTAGE = 3.0  # seconds the server stays down
TRIGGER_FAILS_WITHIN = 5.0  # seconds a trigger may take to fail while the server is down


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this module's own, always stopped and removed afterwards."""
    with throwaway_cluster() as made:
        yield made


def _completed(dsn: str, schema: str) -> int:
    try:
        with psycopg.connect(dsn, autocommit=True, options=f"-c search_path={schema}") as conn:
            row = conn.execute("SELECT count(*) FROM workflow_records WHERE run_state = 5").fetchone()
    except psycopg.errors.UndefinedTable:  # the engine has not created its tables yet
        return 0
    return int(row[0]) if row else 0


def _wait(what: str, condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.01)


def _build(dsn: str, schema: str, first: Any = None) -> tuple[af.Workflow[Item, Stage], list[Any], CollectorRegistry]:
    adapters = [
        PostgresEventStreamer(dsn, schema=schema),
        PostgresRecordStore(dsn, schema=schema),
        PostgresTimeoutStore(dsn, schema=schema),
    ]
    wf = three_steps(schema, parallel=2, first=first).build(
        adapters[0],
        adapters[1],
        MemoryRoleScheduler(),
        timeout_store=adapters[2],
        defaults=af.Options(polling_frequency=0.05),
    )
    return wf, adapters, CollectorRegistry()


def _shut_down(cluster: Cluster, supervisor: af.Supervisor, adapters: list[Any]) -> None:
    """Start the server again if an assertion left it down (stopping is not what is tested), then stop."""
    if not cluster.running():
        cluster.start()
    supervisor.stop()
    for adapter in adapters:
        adapter.close()


def _assert_no_thread_left(before: set[threading.Thread]) -> None:
    def left() -> list[str]:
        return [t.name for t in threading.enumerate() if t not in before and t.is_alive()]

    deadline = time.monotonic() + 5
    while left() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert left() == [], f"threads left running after stop(): {left()}"


def test_every_run_finishes_when_the_server_restarts_with_runs_in_flight(cluster: Cluster) -> None:
    """Stop the server with some of 200 runs completed and the rest in flight, keep it down 3 s, start it:
    all complete at version 4.

    While it is down nothing progresses; after stop() no thread the test started is left.
    """
    before = set(threading.enumerate())
    dsn = cluster.dsn
    # The second half's first steps wait until the server is back: however quick the
    # machine, runs are in flight at the stop (a timed sleep once let all 200 finish first).
    gate = threading.Event()

    def first(run: af.Run[Item, Stage]) -> Stage:
        if int(run.foreign_id[1:]) >= RUNS // 2:
            gate.wait(60)
        run.object.steps += 1
        return Stage.FIRST

    wf, adapters, registry = _build(dsn, "inflight", first)
    policy = af.RestartPolicy(initial=0.05, maximum=0.5, jitter=0.05)
    supervisor = af.Supervisor([wf], registry=registry, restart=policy)

    def completions() -> float:
        labels = {"workflow_name": "inflight", "previous_run_state": "Running", "current_run_state": "Completed"}
        return registry.get_sample_value("workflow_run_state_changes", labels) or 0.0

    def state_changes() -> float:
        return sum(
            sample.value
            for metric in registry.collect()
            if metric.name == "workflow_run_state_changes"
            for sample in metric.samples
            if sample.labels.get("workflow_name") == "inflight"
        )

    try:
        supervisor.start()
        runs = {f"r{i}": wf.trigger(f"r{i}", Item(f"r{i}")) for i in range(RUNS)}
        _wait("some runs completed", lambda: _completed(dsn, "inflight") >= RUNS // 5, 60)

        cluster.stop("fast")
        at_stop, changes_at_stop = completions(), state_changes()
        assert 0 < at_stop < RUNS, f"{at_stop} runs had completed at the stop: the test proves nothing"
        # The outage. Nothing is stored while it lasts. A commit the server applied just before
        # the stop, whose answer was lost, is counted when its failure surfaces if a read had
        # seen it stored (the Writer's in-flight rule): at most the commits then under way.
        time.sleep(OUTAGE)
        in_flight = 2 * BATCH_SIZE  # two consumers' group commits
        assert completions() - at_stop <= in_flight, "runs completed while the server was down"
        assert state_changes() - changes_at_stop <= in_flight, "runs changed state while the server was down"
        assert not cluster.running()

        cluster.start()
        gate.set()
        restarted = time.monotonic()
        deadline = restarted + 60
        for foreign_id, run_id in runs.items():
            run = wf.await_status(foreign_id, run_id, Stage.DONE, timeout=max(0.1, deadline - time.monotonic()))
            assert run.meta.version == 4, f"{foreign_id} finished at version {run.meta.version}"
        print(
            f"{at_stop:.0f} of {RUNS} completed at the stop; all {RUNS} {time.monotonic() - restarted:.1f} s after the start"
        )
        # A commit whose answer the outage cut off is counted once a read finds it stored.
        _wait("every completion counted", lambda: completions() >= RUNS, 30)
        assert completions() == RUNS
    finally:
        gate.set()
        _shut_down(cluster, supervisor, adapters)

    with psycopg.connect(dsn, autocommit=True, options="-c search_path=inflight") as conn:
        records = conn.execute("SELECT run_state, status, version, count(*) FROM workflow_records GROUP BY 1, 2, 3")
        assert records.fetchall() == [(5, int(Stage.DONE), 4, RUNS)]
        per_run = conn.execute(
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM workflow_record_snapshots GROUP BY run_id"
        ).fetchall()
        assert len(per_run) == RUNS
        assert {row[0] for row in per_run} == {"1,2,3,4"}  # each transition stored exactly once
        objects = conn.execute("SELECT DISTINCT convert_from(object, 'UTF8')::json->>'steps' FROM workflow_records")
        assert objects.fetchall() == [("3",)]  # three steps in every object: no step's result stored twice
    _assert_no_thread_left(before)


def test_a_trigger_while_the_server_is_down_fails_within_seconds(cluster: Cluster) -> None:
    """With the server stopped, wf.trigger raises an ActorflowError within a few seconds (no hang).

    And the workflow works again once the server is back.
    """
    before = set(threading.enumerate())
    wf, adapters, registry = _build(cluster.dsn, "trigger")
    supervisor = af.Supervisor([wf], registry=registry, restart=af.RestartPolicy(initial=0.05, maximum=0.5))
    try:
        supervisor.start()
        run_id = wf.trigger("before", Item("before"))
        wf.await_status("before", run_id, Stage.DONE, timeout=30)

        cluster.stop("fast")
        started = time.monotonic()
        with pytest.raises(af.ActorflowError, match=r"PostgreSQL|connection") as failed:
            wf.trigger("during", Item("during"))
        took = time.monotonic() - started
        assert took < TRIGGER_FAILS_WITHIN, f"a trigger during the outage took {took:.1f} s to fail: {failed.value}"

        cluster.start()
        run_id = wf.trigger("after", Item("after"))
        assert wf.await_status("after", run_id, Stage.DONE, timeout=60).meta.version == 4
    finally:
        _shut_down(cluster, supervisor, adapters)
    _assert_no_thread_left(before)
