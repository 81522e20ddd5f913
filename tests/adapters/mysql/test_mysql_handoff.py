"""On MySQL, a node hands the events of its own writes to its own idle step consumers (engine/handoff.py).

The store then leaves those events out of the commit's wake-up (`LocalWakeups`): the
consumer gets the event and its committed record from the writer, without a wake-up and
a read (a round trip) per hop. Each step still runs exactly once, the log's copies are
read later and dropped, and the cursors still reach the end of the log.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any

import pytest

import actorflow as af
from actorflow.adapters._sql.wakeups import Wakeups
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.adapters.mysql import MysqlEventStreamer, MysqlRecordStore
from actorflow.event import topic
from tests.adapters.mysql.conftest import connect_admin
from tests.handoff import (
    count_handed,
    node_and_client,
    single_runs_take_their_own_events,
    stopping_node_passes_its_twins,
)
from tests.model import Item, Stage, three_steps
from tests.waiting import eventually

pytestmark = [pytest.mark.mysql, pytest.mark.timeout(120)]

RUNS = 20
STEPS = (Stage.STARTED, Stage.FIRST, Stage.SECOND)


def count_wakeups(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """From now on (for the test), how many commits of this process woke each key."""
    bumped = collections.Counter[str]()
    lock = threading.Lock()
    bump = Wakeups.bump

    def counting(self: Wakeups, keys: Any) -> None:
        keys = list(keys)
        with lock:
            bumped.update(keys)
        bump(self, keys)

    monkeypatch.setattr(Wakeups, "bump", counting)
    return bumped


def _adapters(dsn: str) -> Callable[[], tuple[Any, Any]]:
    """New MySQL adapters on the test's database, each call."""
    return lambda: (MysqlRecordStore(dsn), MysqlEventStreamer(dsn))


def _cursors_at_the_end(dsn: str, workflow: str, statuses: Any = STEPS) -> bool:
    """Every cursor of the step topics stands at the last event of its topic."""
    conn = connect_admin(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT c.topic, c.seq, (SELECT max(e.seq) FROM workflow_events e WHERE e.topic = c.topic) "
                "FROM workflow_cursors c WHERE c.topic LIKE %s",
                (f"{workflow}-%",),
            )
            rows = cur.fetchall()
    finally:
        conn.close()
    steps = {topic(workflow, s) for s in statuses}
    return {t for t, _, _ in rows} >= steps and all(at == last for t, at, last in rows if t in steps)


def test_steps_take_their_own_nodes_events_unannounced_run_once_and_the_cursors_reach_the_end(mysql_dsn, monkeypatch):
    taken = count_handed(monkeypatch)
    bumped = count_wakeups(monkeypatch)
    calls: list[tuple[str, Stage]] = []
    store = MysqlRecordStore(mysql_dsn)
    streamer = MysqlEventStreamer(mysql_dsn)
    wf = three_steps("my-handoff", calls=calls).build(streamer, store, MemoryRoleScheduler())
    assert wf.engine.capabilities.hands_off
    try:
        with af.Supervisor([wf]):
            single_runs_take_their_own_events(
                wf, RUNS, calls, taken, lambda t: bumped[f"e:{t}"], lambda: _cursors_at_the_end(mysql_dsn, "my-handoff")
            )
    finally:
        streamer.close()
        store.close()


def test_a_run_triggered_by_another_engine_still_wakes_the_consumer(mysql_dsn, monkeypatch):
    """Nothing is handed for a write of an engine without the step consumers: its commit wakes them as before."""
    bumped = count_wakeups(monkeypatch)
    with node_and_client(_adapters(mysql_dsn), "my-handoff") as (wf, client), af.Supervisor([wf]):
        first = topic("my-handoff", Stage.STARTED)
        eventually(lambda: wf.engine.handoff.subscribers(first), what="the first step's consumer up")
        run_id = client.trigger("from-a-client", Item("c"))
        wf.await_status("from-a-client", run_id, Stage.DONE, timeout=30)
        assert bumped[f"e:{first}"] >= 1


def test_two_engines_of_one_workflow_on_one_store_announce_every_commit(mysql_dsn):
    """The store cannot tell whose commit is whose: it leaves nothing out, and runs still finish."""
    store = MysqlRecordStore(mysql_dsn)
    streamer = MysqlEventStreamer(mysql_dsn)
    wf = three_steps("my-handoff").build(streamer, store, MemoryRoleScheduler())
    other = three_steps("my-handoff").build(streamer, store, MemoryRoleScheduler())
    assert store._handed["my-handoff"] is None  # noqa: SLF001 - the store's own bookkeeping
    try:
        with af.Supervisor([wf]):
            run_id = other.trigger("shared", Item("s"))
            wf.await_status("shared", run_id, Stage.DONE, timeout=30)
    finally:
        streamer.close()
        store.close()


def test_a_stopping_node_reads_the_copies_of_events_it_was_handed_so_the_next_holder_does_not_redo_them(
    mysql_dsn, monkeypatch
):
    """A handed event's cursor moves when its copy in the log is read: a node that stops reads them first.

    A receive right after a handed step does not read (the quiet receive), so the copy is
    still unread at the stop unless `look_again` makes the stop's receive read it.
    """
    stopping_node_passes_its_twins(
        _adapters(mysql_dsn),
        lambda name, statuses: _cursors_at_the_end(mysql_dsn, name, statuses),
        "my-stop",
        monkeypatch,
    )
