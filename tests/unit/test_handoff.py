"""`Handoff`: a committed record's event goes to the subscribers of its topic and shard, and nowhere else."""

from __future__ import annotations

from datetime import UTC, datetime

from actorflow.engine import HANDED_EVENT_ID, Handoff
from actorflow.event import Event, Header, shard_of, topic
from actorflow.record import Record, RecordMeta
from actorflow.runstate import RunState


def record(run_id: str, status: int, state: RunState = RunState.RUNNING, version: int = 3) -> Record:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    return Record(
        workflow_name="wf",
        foreign_id=f"f-{run_id}",
        run_id=run_id,
        run_state=state,
        status=status,
        object=b"{}",
        created_at=now,
        updated_at=now,
        meta=RecordMeta(version=version),
    )


def test_an_event_reaches_only_the_subscriber_of_its_topic_and_shard():
    handoff = Handoff()
    got: dict[str, list[Event]] = {"s0": [], "s1": [], "other": []}
    handoff.subscribe(topic("wf", 2), 0, 2, got["s0"].append)
    handoff.subscribe(topic("wf", 2), 1, 2, got["s1"].append)
    handoff.subscribe(topic("wf", 3), 0, 1, got["other"].append)
    run_ids = [f"run-{i}" for i in range(20)]
    for run_id in run_ids:
        handoff.publish(record(run_id, 2))

    assert [e.run_id for e in got["s0"]] == [r for r in run_ids if shard_of(r, 2) == 0]
    assert [e.run_id for e in got["s1"]] == [r for r in run_ids if shard_of(r, 2) == 1]
    assert got["other"] == []
    event = got["s0"][0]
    assert event.id == HANDED_EVENT_ID
    assert event.type == 2
    assert event.headers[Header.RECORD_VERSION] == "3"
    assert event.headers[Header.TOPIC] == topic("wf", 2)


def test_a_stopped_runs_event_goes_to_the_run_state_topic_not_to_the_step():
    handoff = Handoff()
    got: list[Event] = []
    handoff.subscribe(topic("wf", 2), 0, 1, got.append)
    handoff.publish(record("r", 2, RunState.PAUSED))
    handoff.publish(record("r", 2, RunState.COMPLETED))
    assert got == []


def test_an_unsubscribed_consumer_gets_nothing_more():
    handoff = Handoff()
    first: list[Event] = []
    second: list[Event] = []
    token = handoff.subscribe(topic("wf", 2), 0, 1, first.append)
    handoff.subscribe(topic("wf", 2), 0, 1, second.append)
    handoff.unsubscribe(token)
    handoff.publish(record("r", 2))
    assert first == []
    assert [e.run_id for e in second] == ["r"]


def test_publishing_with_no_subscriber_builds_nothing(monkeypatch):
    """The writer calls publish on every commit: with no subscriber it must not even compute a topic."""
    import actorflow.engine.handoff as module

    def boom(_: Record) -> str:
        raise AssertionError("no topic should be computed")

    monkeypatch.setattr(module, "event_topic", boom)
    Handoff().publish(record("r", 2))
