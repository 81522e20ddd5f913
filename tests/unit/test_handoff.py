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


class Got(list[Event]):
    """A subscriber that keeps what it is handed (and the records, in ``records``)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[Record] = []

    def __call__(self, handed: list[tuple[Event, Record]]) -> None:
        for event, record in handed:
            self.append(event)
            self.records.append(record)


def test_an_event_reaches_only_the_subscriber_of_its_topic_and_shard():
    handoff = Handoff()
    got = {"s0": Got(), "s1": Got(), "other": Got()}
    handoff.subscribe(topic("wf", 2), 0, 2, got["s0"])
    handoff.subscribe(topic("wf", 2), 1, 2, got["s1"])
    handoff.subscribe(topic("wf", 3), 0, 1, got["other"])
    run_ids = [f"run-{i}" for i in range(20)]
    handoff.publish([record(run_id, 2) for run_id in run_ids[:5]])  # one commit's, and then one at a time
    for run_id in run_ids[5:]:
        handoff.publish([record(run_id, 2)])

    assert [e.run_id for e in got["s0"]] == [r for r in run_ids if shard_of(r, 2) == 0]
    assert [e.run_id for e in got["s1"]] == [r for r in run_ids if shard_of(r, 2) == 1]
    assert got["other"] == []
    event = got["s0"][0]
    assert event.id == HANDED_EVENT_ID
    assert event.type == 2
    assert event.headers[Header.RECORD_VERSION] == "3"
    assert event.headers[Header.TOPIC] == topic("wf", 2)
    assert got["s0"].records[0] == record(event.run_id, 2)  # the committed record comes with it


def test_a_stopped_runs_event_goes_to_the_run_state_topic_not_to_the_step():
    handoff = Handoff()
    got = Got()
    handoff.subscribe(topic("wf", 2), 0, 1, got)
    handoff.publish([record("r", 2, RunState.PAUSED)])
    handoff.publish([record("r", 2, RunState.COMPLETED)])
    assert got == []


def test_an_unsubscribed_consumer_gets_nothing_more():
    handoff = Handoff()
    first, second = Got(), Got()
    token = handoff.subscribe(topic("wf", 2), 0, 1, first)
    handoff.subscribe(topic("wf", 2), 0, 1, second)
    handoff.unsubscribe(token)
    handoff.publish([record("r", 2)])
    assert first == []
    assert [e.run_id for e in second] == ["r"]


def test_publishing_with_no_subscriber_builds_nothing(monkeypatch):
    """The writer calls publish on every commit: with no subscriber it must not even compute a topic."""
    import actorflow.engine.handoff as module

    def boom(_: Record) -> str:
        raise AssertionError("no topic should be computed")

    monkeypatch.setattr(module, "event_topic", boom)
    Handoff().publish([record("r", 2)])


# -- with a store that leaves handed events out of its wake-ups (LocalWakeups) -----------------


def promising() -> tuple[Handoff, Got]:
    """A Handoff keeping promises, with one idle subscriber of topic wf-2 (and what it gets)."""
    handoff = Handoff()
    handoff.keep_promises()
    got = Got()
    handoff.set_idle(handoff.subscribe(topic("wf", 2), 0, 1, got), idle=True)
    return handoff, got


def test_only_promised_records_are_handed_when_the_store_notifies_the_rest():
    """keep_promises: a record is handed iff promise() said so before its commit (else the store woke its reader)."""
    handoff, got = promising()
    assert handoff.promise(record("a", 2))
    handoff.publish([record("a", 2)])
    handoff.publish([record("b", 2)])  # not promised: its reader was notified, a handed copy would be a twin
    handoff.publish([record("a", 2)])  # a promise is kept once
    assert [e.run_id for e in got] == ["a"]


def test_nothing_is_promised_to_a_busy_subscriber_or_to_none():
    """A subscriber with work in hand reads its events in batches: it is woken as usual."""
    handoff = Handoff()
    handoff.keep_promises()
    assert not handoff.promise(record("a", 2))  # no subscriber
    got = Got()
    token = handoff.subscribe(topic("wf", 2), 0, 1, got)
    assert not handoff.promise(record("a", 2))  # not idle until its consumer says so (it reads the log first)
    handoff.set_idle(token, idle=True)
    handoff.set_idle(token, idle=False)
    assert not handoff.promise(record("a", 2))
    assert not handoff.promise(record("b", 3))  # another topic
    handoff.set_idle(token, idle=True)
    assert handoff.promise(record("a", 2))


def test_a_promise_to_a_subscriber_that_left_is_handed_to_nobody():
    """The consumer went (its role moved) between the promise and the commit: the next holder reads the log."""
    handoff = Handoff()
    handoff.keep_promises()
    got = Got()
    token = handoff.subscribe(topic("wf", 2), 0, 1, got)
    handoff.set_idle(token, idle=True)
    assert handoff.promise(record("a", 2))
    handoff.unsubscribe(token)
    handoff.publish([record("a", 2)])
    assert got == []


def test_promises_of_commits_that_never_came_are_forgotten_past_the_limit():
    import actorflow.engine.handoff as module

    handoff = Handoff()
    handoff.keep_promises()
    got = Got()
    token = handoff.subscribe(topic("wf", 2), 0, 1, got)
    last = module.PROMISE_LIMIT + 4
    for i in range(last + 1):
        handoff.set_idle(token, idle=True)
        handoff.promise(record(f"r{i}", 2))
    handoff.publish([record("r0", 2)])  # the oldest, forgotten
    handoff.publish([record(f"r{last}", 2)])
    assert [e.run_id for e in got] == [f"r{last}"]


def test_an_idle_subscriber_is_promised_a_few_events_at_a_time():
    """A commit of a backlog's worth is mostly notified: handing it over would save nothing."""
    import actorflow.engine.handoff as module

    handoff = Handoff()
    handoff.keep_promises()
    token = handoff.subscribe(topic("wf", 2), 0, 1, Got())
    handoff.set_idle(token, idle=True)
    promised = [handoff.promise(record(f"r{i}", 2)) for i in range(3 * module.IDLE_ROOM)]
    assert promised == [True] * module.IDLE_ROOM + [False] * (2 * module.IDLE_ROOM)
    handoff.set_idle(token, idle=True)  # idle again: room again
    assert handoff.promise(record("again", 2))


def test_a_topic_other_processes_read_is_never_promised():
    """A status with a timeout: its inserter reads the topic too and must be woken (not left to its poll)."""
    handoff = Handoff()
    handoff.keep_promises(read_elsewhere=[topic("wf", 2)])
    handoff.set_idle(handoff.subscribe(topic("wf", 2), 0, 1, Got()), idle=True)
    handoff.set_idle(handoff.subscribe(topic("wf", 3), 0, 1, Got()), idle=True)
    assert not handoff.promise(record("a", 2))
    assert handoff.promise(record("a", 3))


def test_the_promise_of_a_refused_record_is_forgotten():
    """Its event was never written: a later write of that version, notified, is not handed as well."""
    handoff, got = promising()
    assert handoff.promise(record("a", 2))
    handoff.forget([record("a", 2)])
    handoff.publish([record("a", 2)])
    assert got == []
