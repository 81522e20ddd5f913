"""On PostgreSQL, a node hands the events of its own writes to its own idle step consumers (engine/handoff.py).

The store then leaves those events out of the commit's notification (`LocalWakeups`):
the consumer gets the event and its committed record from the writer, without a
wake-up and a read per hop. Each step still runs exactly once, the log's copies are
read later and dropped, and the cursors still reach the end of the log.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler, MemoryTimeoutStore
from actorflow.adapters.postgres import PostgresEventStreamer, PostgresRecordStore
from actorflow.engine.handoff import Handoff
from actorflow.event import topic
from actorflow.processes.consumer import EventConsumer
from tests.handoff import (
    count_handed,
    node_and_client,
    single_runs_take_their_own_events,
    stopping_node_passes_its_twins,
)
from tests.model import Item, Stage, three_steps
from tests.waiting import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

RUNS = 30
STEPS = (Stage.STARTED, Stage.FIRST, Stage.SECOND)


class _Notices:
    """Every notification on the store's channel, read by a session of its own."""

    def __init__(self, dsn: str, channel: str) -> None:
        self.payloads: list[str] = []
        self._conn = psycopg.connect(dsn, autocommit=True)
        self._conn.execute(f'LISTEN "{channel}"')
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for note in self._conn.notifies(timeout=0.05):
                self.payloads.append(note.payload)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()

    def about(self, step_topic: str) -> int:
        return sum(1 for p in list(self.payloads) if p.partition("|")[0] == f"e:{step_topic}")


def _adapters(dsn: str, schema: str) -> Callable[[], tuple[Any, Any]]:
    """New PostgreSQL adapters on the test's schema, each call."""
    return lambda: (PostgresRecordStore(dsn, schema=schema), PostgresEventStreamer(dsn, schema=schema))


def _cursors_at_the_end(dsn: str, schema: str, workflow: str = "pg-handoff", statuses: Any = STEPS) -> bool:
    """Every cursor of the step topics stands at the last event of its topic."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            f"""SELECT c.topic, c.id, (SELECT max(e.id) FROM "{schema}".workflow_events e WHERE e.topic = c.topic)
                FROM "{schema}".workflow_cursors c WHERE c.topic LIKE %s""",  # noqa: S608 - the test's own schema
            (f"{workflow}-%",),
        ).fetchall()
    steps = {topic(workflow, s) for s in statuses}
    return {t for t, _, _ in rows} >= steps and all(at == last for t, at, last in rows if t in steps)


def test_steps_take_their_own_nodes_events_unnotified_run_once_and_the_cursors_reach_the_end(
    pg_dsn, pg_schema, monkeypatch
):
    taken = count_handed(monkeypatch)
    calls: list[tuple[str, Stage]] = []
    store = PostgresRecordStore(pg_dsn, schema=pg_schema)
    streamer = PostgresEventStreamer(pg_dsn, schema=pg_schema)
    wf = three_steps("pg-handoff", calls=calls).build(streamer, store, MemoryRoleScheduler())
    assert wf.engine.capabilities.hands_off
    notices = _Notices(pg_dsn, store.db.channel)
    try:
        with af.Supervisor([wf]):
            single_runs_take_their_own_events(
                wf, RUNS, calls, taken, notices.about, lambda: _cursors_at_the_end(pg_dsn, pg_schema)
            )
    finally:
        notices.close()
        streamer.close()
        store.close()


def test_a_node_that_does_not_run_the_workflow_still_wakes_the_one_that_does(pg_dsn, pg_schema):
    """A trigger from a process without the step consumers is notified as before (nothing is handed)."""
    with node_and_client(_adapters(pg_dsn, pg_schema), "pg-handoff") as (wf, client):
        notices = _Notices(pg_dsn, wf.engine.record_store.db.channel)
        try:
            with af.Supervisor([wf]):
                first = topic("pg-handoff", Stage.STARTED)
                eventually(lambda: wf.engine.handoff.subscribers(first), what="the first step's consumer up")
                run_id = client.trigger("from-a-client", Item("c"))
                # Well within the receivers' poll: woken by the notification, not found by polling.
                wf.await_status("from-a-client", run_id, Stage.DONE, timeout=30)
                eventually(lambda: notices.about(first) >= 1, what="the client's trigger notified")
        finally:
            notices.close()


def test_a_consumer_that_read_an_event_from_the_log_takes_its_own_nodes_events_again(pg_dsn, pg_schema, monkeypatch):
    """A read that drained the log (less than a batch) leaves the consumer idle: the next hop is handed.

    Only a full batch means a backlog, where handing over saves nothing. Otherwise a hop
    that was notified once (another node's write, or a commit while the consumer was
    busy) would keep each later hop notified and read back, one round trip each.
    """
    taken = count_handed(monkeypatch)
    with node_and_client(_adapters(pg_dsn, pg_schema), "pg-handoff") as (wf, client), af.Supervisor([wf]):
        first = topic("pg-handoff", Stage.STARTED)
        eventually(lambda: wf.engine.handoff.subscribers(first), what="the first step's consumer up")
        run_id = client.trigger("from-a-client", Item("c"))  # read from the log (nothing handed)
        wf.await_status("from-a-client", run_id, Stage.DONE, timeout=30)
        before = taken[first]
        for i in range(5):
            run_id = wf.trigger(f"own-{i}", Item(f"own-{i}"))
            wf.await_status(f"own-{i}", run_id, Stage.DONE, timeout=30)
        assert taken[first] > before, "the consumer stayed out of the handoff after one read"


def test_two_engines_of_one_workflow_on_one_store_notify_every_commit(pg_dsn, pg_schema):
    """The store cannot tell whose commit is whose: it leaves nothing out, and runs still finish."""
    store = PostgresRecordStore(pg_dsn, schema=pg_schema)
    streamer = PostgresEventStreamer(pg_dsn, schema=pg_schema)
    wf = three_steps("pg-handoff").build(streamer, store, MemoryRoleScheduler())
    other = three_steps("pg-handoff").build(streamer, store, MemoryRoleScheduler())
    assert store._handed["pg-handoff"] is None  # noqa: SLF001 - the store's own bookkeeping
    try:
        with af.Supervisor([wf]):
            run_id = other.trigger("shared", Item("s"))
            wf.await_status("shared", run_id, Stage.DONE, timeout=30)
    finally:
        streamer.close()
        store.close()


def test_a_log_copy_done_before_the_writer_hands_the_event_over_is_not_run_again(pg_dsn, pg_schema, monkeypatch):
    """The server committed; the consumer read the log's copy and ran the step; then the writer handed it over.

    The handed copy is the twin: dropped, so a step that writes nothing (whose second run
    no version check would refuse) still runs once.
    """
    calls = collections.Counter[str]()
    promised, ran, taken = threading.Event(), threading.Event(), threading.Event()

    def skip(run: Any) -> Any:
        calls[run.foreign_id] += 1
        ran.set()
        return run.skip()

    b = af.Builder("pg-late-hand", Item, Stage)
    b.add_step(Stage.STARTED, lambda run: Stage.FIRST, Stage.FIRST)
    # A short poll: the log's copy is found while the writer is held back below.
    b.add_step(Stage.FIRST, skip, Stage.DONE).with_options(polling_frequency=0.02)
    first = topic("pg-late-hand", Stage.FIRST)

    promise, publish, take = Handoff.promise, Handoff.publish, EventConsumer._take_handed  # noqa: SLF001

    def promising(self: Handoff, record: Any) -> bool:
        made = promise(self, record)
        if made and record.status == Stage.FIRST:
            promised.set()
        return made

    def late(self: Handoff, records: Any) -> None:
        if promised.is_set() and any(r.status == Stage.FIRST for r in records):
            assert ran.wait(10), "the log's copy was not read on the consumer's poll"
        publish(self, records)

    def taking(self: EventConsumer, *args: Any) -> Any:
        events = take(self, *args)
        if self.topic == first and ran.is_set():
            taken.set()
        return events

    monkeypatch.setattr(Handoff, "promise", promising)
    monkeypatch.setattr(Handoff, "publish", late)
    monkeypatch.setattr(EventConsumer, "_take_handed", taking)
    store = PostgresRecordStore(pg_dsn, schema=pg_schema)
    streamer = PostgresEventStreamer(pg_dsn, schema=pg_schema)
    wf = b.build(streamer, store, MemoryRoleScheduler())
    try:
        with af.Supervisor([wf]):
            eventually(lambda: wf.engine.handoff.subscribers(first), what="the step's consumer up")
            for i in range(20):  # until a hop to FIRST is promised (its consumer idle at the commit)
                wf.trigger(f"late-{i}", Item(f"late-{i}"))
                eventually(lambda i=i: calls[f"late-{i}"] >= 1, what="the step run")
                if promised.is_set():
                    break
            assert promised.is_set(), "no hop was handed over"
            assert taken.wait(10), "the handed copy was not taken in"
            eventually(lambda: not wf.engine.handoff._promised, what="the promise kept")  # noqa: SLF001
            assert set(calls.values()) == {1}, calls
    finally:
        streamer.close()
        store.close()


def test_a_status_with_a_timeout_is_notified_for_its_inserter(pg_dsn, pg_schema):
    """Its timeout inserter reads the step's topic too: the hop is notified, so the timer starts at once."""
    from datetime import timedelta

    b = af.Builder("pg-timed", Item, Stage)
    b.add_step(Stage.STARTED, lambda run: Stage.FIRST, Stage.FIRST)
    b.add_step(Stage.FIRST, lambda run: Stage.DONE, Stage.DONE)
    b.add_timeout(Stage.FIRST, af.duration_timer(timedelta(hours=1)), lambda run, now: Stage.DONE, Stage.DONE)
    store = PostgresRecordStore(pg_dsn, schema=pg_schema)
    streamer = PostgresEventStreamer(pg_dsn, schema=pg_schema)
    wf = b.build(streamer, store, MemoryRoleScheduler(), timeout_store=MemoryTimeoutStore())
    notices = _Notices(pg_dsn, store.db.channel)
    first = topic("pg-timed", Stage.FIRST)
    try:
        with af.Supervisor([wf]):
            eventually(lambda: wf.engine.handoff.subscribers(first), what="the step's consumer up")
            for i in range(5):
                run_id = wf.trigger(f"t-{i}", Item(f"t-{i}"))
                wf.await_status(f"t-{i}", run_id, Stage.DONE, timeout=30)
            eventually(lambda: notices.about(first) >= 5, what="every hop to the timed status notified")
    finally:
        notices.close()
        streamer.close()
        store.close()


def test_a_stopping_node_reads_the_copies_of_events_it_was_handed_so_the_next_holder_does_not_redo_them(
    pg_dsn, pg_schema, monkeypatch
):
    """A handed event's cursor moves when its copy in the log is read: a node that stops reads them first.

    Else the role's next holder would meet the copy and run again a step that wrote nothing.
    """
    stopping_node_passes_its_twins(
        _adapters(pg_dsn, pg_schema),
        lambda name, statuses: _cursors_at_the_end(pg_dsn, pg_schema, name, statuses),
        "pg-stop",
        monkeypatch,
    )
