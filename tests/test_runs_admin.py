"""`RunsAdmin`: a tool without the workflow's code controls runs that nodes then carry on.

The admin opens its own store on the nodes' database, as ``actorflow runs`` in another
process does. Its changes must reach the nodes wherever they read events: the database's
own event log (SQLite, PostgreSQL streamers) or the outbox the nodes relay (here a memory
streamer stands for Kafka).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRoleScheduler
from actorflow.admin import RunsAdmin
from actorflow.capabilities import Snapshots
from tests.model import FAST, Order, Status
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(60)


@dataclasses.dataclass
class Place:
    """Where a stack's node keeps its records and reads its events, and how the admin opens the same database."""

    node: Callable[[], tuple[Any, Any, Any]]  # streamer, record store, timeout store
    admin: Callable[[], RunsAdmin]
    direct: bool


def _sqlite(tmp_path: Path, *, direct: bool) -> Place:
    from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore, SqliteTimeoutStore

    path = tmp_path / "runs.db"

    def node() -> tuple[Any, Any, Any]:
        streamer = SqliteEventStreamer(path) if direct else MemoryEventStreamer()
        return streamer, SqliteRecordStore(path), SqliteTimeoutStore(path)

    return Place(node, lambda: RunsAdmin(SqliteRecordStore(path), events=SqliteEventStreamer(path)), direct)


def _postgres(request: pytest.FixtureRequest) -> Place:
    from actorflow.adapters.postgres import PostgresEventStreamer, PostgresRecordStore, PostgresTimeoutStore

    dsn, schema = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")

    def node() -> tuple[Any, Any, Any]:
        return (
            PostgresEventStreamer(dsn, schema=schema),
            PostgresRecordStore(dsn, schema=schema),
            PostgresTimeoutStore(dsn, schema=schema),
        )

    def admin() -> RunsAdmin:
        return RunsAdmin(PostgresRecordStore(dsn, schema=schema), events=PostgresEventStreamer(dsn, schema=schema))

    return Place(node, admin, direct=True)


@pytest.fixture(
    params=["sqlite", "sqlite-outbox", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    if request.param == "postgres":
        return _postgres(request)
    return _sqlite(tmp_path, direct=request.param == "sqlite")


@pytest.fixture
def opened_admins(place: Place, opened) -> Callable[[], RunsAdmin]:
    """Admins on the place's database, closed after the test."""

    def make() -> RunsAdmin:
        admin = place.admin()
        opened(admin.store)
        opened(admin._events)  # noqa: SLF001 - the test made it
        return admin

    return make


@pytest.fixture
def workflow(place: Place, opened) -> Callable[[set[str]], af.Workflow[Order, Status]]:
    """``workflow(held)``: the test's workflow on the place (its adapters closed after the test)."""

    def make(held: set[str]) -> af.Workflow[Order, Status]:
        wf = _workflow(place, held)
        for adapter in (wf.event_streamer, wf.record_store, wf.timeout_store):
            if hasattr(adapter, "close"):
                opened(adapter)
        return wf

    return make


def _workflow(place: Place, held: set[str]) -> af.Workflow[Order, Status]:
    """STARTED --charge--> CHARGED --finish--> DONE; the charge pauses a run whose foreign id is in ``held``, once."""

    def charge(run: af.Run[Order, Status]) -> Status:
        if run.foreign_id in held:
            held.discard(run.foreign_id)
            return run.pause("held for review")
        return Status.CHARGED

    b = af.Builder("admin-flow", Order, Status)
    b.add_step(Status.STARTED, charge, Status.CHARGED)
    b.add_step(Status.CHARGED, lambda run: Status.DONE, Status.DONE)
    streamer, store, timeouts = place.node()
    return b.build(streamer, store, MemoryRoleScheduler(), timeout_store=timeouts, defaults=FAST)


def _await_state(admin: RunsAdmin, run_id: str, state: af.RunState) -> af.Record:
    found: list[af.Record] = []

    def reached() -> bool:
        found[:] = [admin.get(run_id)]
        return found[0].run_state is state

    eventually(reached, what=f"run {run_id} reaching {state}", timeout=15)
    return found[0]


def test_a_run_paused_by_its_step_is_resumed_by_the_admin_and_finishes(workflow, opened_admins):
    wf = workflow({"A"})
    run_id = wf.trigger("A", Order(id="A"))
    wf.run()
    try:
        admin = opened_admins()
        paused = _await_state(admin, run_id, af.RunState.PAUSED)
        assert paused.meta.run_state_reason == "held for review"
        resumed = admin.resume(run_id)
        assert (resumed.run_state, resumed.meta.version, resumed.meta.run_state_reason) == (
            af.RunState.RUNNING,
            paused.meta.version + 1,
            "",
        )
        done = wf.await_status("A", run_id, Status.DONE, timeout=15)
        assert done.run_state is af.RunState.COMPLETED
    finally:
        wf.stop()


def test_changes_made_before_any_node_ran_reach_the_nodes(workflow, opened_admins):
    """Paused and resumed while no node runs: the node that starts later finds the resume and finishes the run."""
    wf = workflow(set())
    run_id = wf.trigger("B", Order(id="B"))
    admin = opened_admins()
    assert admin.pause(run_id, "wait").run_state is af.RunState.PAUSED
    assert admin.resume(run_id).meta.version == 3
    wf.run()
    try:
        wf.await_status("B", run_id, Status.DONE, timeout=15)
    finally:
        wf.stop()
    history = admin.history(run_id)
    assert [(v.meta.version, v.run_state) for v in history][:3] == [
        (1, af.RunState.INITIATED),
        (2, af.RunState.PAUSED),
        (3, af.RunState.RUNNING),
    ]


def test_a_refused_action_stores_nothing(workflow, opened_admins):
    wf = workflow(set())
    run_id = wf.trigger("C", Order(id="C"))
    admin = opened_admins()
    with pytest.raises(af.InvalidRunStateTransition):
        admin.cancel(run_id)  # the engine's table: an initiated run is paused first
    admin.pause(run_id)
    admin.cancel(run_id, "not needed")
    before = admin.history(run_id)
    with pytest.raises(af.InvalidRunStateTransition):
        admin.pause(run_id)
    with pytest.raises(af.RecordNotFound):
        admin.pause("no-such-run")
    with pytest.raises(ValueError, match="unknown action"):
        admin.act("explode", run_id)
    assert admin.history(run_id) == before
    assert isinstance(admin.store, Snapshots)


def test_a_delete_request_is_carried_out_by_a_node(workflow, opened_admins):
    wf = workflow(set())
    run_id = wf.trigger("D", Order(id="D", amount=12))
    wf.run()
    try:
        wf.await_status("D", run_id, Status.DONE, timeout=15)
        admin = opened_admins()
        admin.delete_data(run_id, "customer asked")
        deleted = _await_state(admin, run_id, af.RunState.DATA_DELETED)
    finally:
        wf.stop()
    assert b"12" not in deleted.object
    assert deleted.meta.run_state_reason == "customer asked"


def test_matching_reads_every_run_of_a_filter_across_pages(workflow, opened_admins, monkeypatch):
    import actorflow.admin

    monkeypatch.setattr(actorflow.admin, "_PAGE", 3)  # several pages for a few runs
    wf = workflow(set())
    ids = [wf.trigger(f"m-{i}", Order(id=f"m-{i}")) for i in range(8)]
    admin = opened_admins()
    for run_id in ids[:5]:
        admin.pause(run_id)
    paused = af.RecordFilter(run_states=(af.RunState.PAUSED,))
    assert [r.run_id for r in admin.matching("admin-flow", filter=paused)] == ids[:5]
    assert [r.run_id for r in admin.matching(filter=af.RecordFilter(foreign_id_prefix="m-"))] == ids
    counts = {(c.status_name, c.run_state): c.count for c in admin.counts("admin-flow")}
    assert counts == {("Started", af.RunState.PAUSED): 5, ("Started", af.RunState.INITIATED): 3}
