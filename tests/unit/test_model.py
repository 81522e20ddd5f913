"""The model: graph, options, codec, cron, topics and roles, status names, sentinels."""

from __future__ import annotations

import dataclasses
import enum
from datetime import UTC, datetime, timedelta

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from actorflow.codec import JsonCodec
from actorflow.cron import CronError, parse
from actorflow.graph import Graph
from actorflow.status import RUN_STATE_UPDATED, SAVE_AND_REPEAT, SKIP, status_name
from actorflow.topics import delete_topic, make_role, run_state_change_topic, topic


class Status(enum.IntEnum):
    ORDER_PLACED = 1
    PaymentTaken = 2
    DONE = 3


def test_graph_starting_terminal_and_validation():
    g = Graph()
    g.add(1, 2)
    g.add(2, 3)
    g.add(2, 4)
    g.add(5, 2)
    assert g.starting() == [1, 5]
    assert [n for n in g.nodes() if g.is_terminal(n)] == [3, 4]
    assert g.transitions(2) == [3, 4]
    g.validate(2, 4)
    with pytest.raises(af.InvalidTransition):
        g.validate(1, 3)
    with pytest.raises(af.UnknownStatus):
        g.require(9)


@pytest.mark.parametrize("bad", [0, -1, -2])
def test_graph_refuses_reserved_statuses(bad):
    with pytest.raises(af.BuildError, match="reserved"):
        Graph().add(bad, 1)
    with pytest.raises(af.BuildError, match="reserved"):
        Graph().add(1, bad)


def test_options_have_the_original_defaults():
    opts = af.Options()
    assert (opts.parallel_count, opts.polling_frequency, opts.err_backoff, opts.lag, opts.lag_alert) == (
        1,
        0.5,
        1.0,
        0.0,
        1800.0,
    )
    assert opts.pause_after_err_count == 0


def test_the_concurrency_and_commit_options_have_their_defaults_and_refuse_nonsense():
    """max_in_flight 32, batch_size 100, commit_interval 5 ms; a window or batch under 1 is refused."""
    opts = af.Options().resolve()
    assert (opts.max_in_flight, opts.batch_size, opts.commit_interval) == (32, 100, 0.005)
    assert af.Options(commit_interval=timedelta(milliseconds=2)).resolve().commit_interval == 0.002
    for bad in ({"max_in_flight": 0}, {"batch_size": 0}, {"max_in_flight": -1}, {"batch_size": 2.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            af.Options(**bad)
    with pytest.raises(ValueError, match="commit_interval"):
        af.Options(commit_interval=-1)


def test_options_merge_only_what_was_given():
    """A step's options override the workflow's; unset ones are inherited, never zeroed."""
    defaults = af.Options(err_backoff=timedelta(seconds=3), polling_frequency=0.1)
    step = af.Options(pause_after_err_count=2)
    resolved = step.over(defaults).resolve()
    assert resolved.err_backoff == 3.0
    assert resolved.polling_frequency == 0.1
    assert resolved.pause_after_err_count == 2
    assert resolved.lag_alert == 1800.0


def test_a_consume_lag_without_a_lag_alert_moves_the_alert_past_the_lag():
    """As the original's ConsumeLag: the alert becomes 30 minutes plus the lag, unless given."""
    assert af.Options(lag=timedelta(hours=1)).resolve().lag_alert == 1800.0 + 3600.0
    assert af.Options(lag=3600, lag_alert=60).resolve().lag_alert == 60.0
    assert af.Options(lag=3600).over(af.Options(lag_alert=120)).resolve().lag_alert == 120.0


@pytest.mark.parametrize(
    "kwargs", [{"parallel_count": -1}, {"parallel_count": 1.5}, {"err_backoff": -1}, {"polling_frequency": 0}]
)
def test_options_reject_bad_values(kwargs):
    with pytest.raises(ValueError):
        af.Options(**kwargs)


@dataclasses.dataclass
class Inner:
    when: datetime | None = None
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Outer:
    name: str = ""
    amount: float = 0.0
    status: Status = Status.ORDER_PLACED
    inner: Inner = dataclasses.field(default_factory=Inner)
    children: list[Inner] = dataclasses.field(default_factory=list)
    extra: dict[str, int] = dataclasses.field(default_factory=dict)
    maybe: int | None = None


def test_json_codec_round_trips_nested_dataclasses():
    codec = JsonCodec(Outer)
    obj = Outer(
        "a",
        2,
        Status.DONE,
        Inner(datetime(2024, 5, 1, tzinfo=UTC), ["x"]),
        [Inner(None, ["y"])],
        {"k": 1},
        None,
    )
    data = codec.encode(obj)
    assert data.startswith(b'{"name":"a"')
    back = codec.decode(data)
    assert back == obj
    assert isinstance(back.amount, float)
    assert back.status is Status.DONE


def test_json_codec_reports_what_does_not_encode_or_decode():
    codec = JsonCodec(Outer)
    with pytest.raises(af.CodecError, match="cannot encode"):
        codec.encode(Outer(extra={"k": object()}))  # type: ignore[dict-item]
    with pytest.raises(af.CodecError, match="cannot decode"):
        codec.decode(b"{not json")
    with pytest.raises(af.CodecError):
        codec.decode(b"[1, 2]")


def test_a_user_codec_pair_is_used():
    b = af.Builder("c", str, Status, codec=(str.encode, bytes.decode))
    b.add_step(Status.ORDER_PLACED, lambda run: Status.DONE, Status.DONE)
    wf = b.build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())
    run_id = wf.trigger("c-1", "hello")
    assert wf.record_store.lookup(run_id).object == b"hello"
    assert wf.codec.decode(wf.codec.encode("hello")) == "hello"


def test_topics_and_roles_are_spelled_as_the_original():
    assert topic("my workflow", Status.DONE) == "my_workflow-3"
    assert run_state_change_topic("my workflow") == "my_workflow-run-state-change"
    assert delete_topic("wf") == "wf-delete"
    assert make_role("Orders", 2, "consumer", 1, "of", 4) == "orders-2-consumer-1-of-4"
    assert make_role("nightly", "scheduler", "@every 1h") == "nightly-scheduler-@every_1h"


def test_status_names_split_enum_member_names():
    assert status_name(Status.ORDER_PLACED) == "Order Placed"
    assert status_name(Status.PaymentTaken) == "Payment Taken"


def test_sentinels_keep_the_original_values():
    assert (int(SKIP), int(RUN_STATE_UPDATED), int(SAVE_AND_REPEAT)) == (0, -1, -2)


def test_cron_specs():
    start = datetime(2024, 1, 1, 5, 30, tzinfo=UTC)
    assert parse("0 2 * * *")(start) == datetime(2024, 1, 2, 2, 0, tzinfo=UTC)
    assert parse("@hourly")(start) == datetime(2024, 1, 1, 6, 0, tzinfo=UTC)
    assert parse("@daily")(start) == datetime(2024, 1, 2, tzinfo=UTC)
    assert parse("@every 1h30m")(start) == start + timedelta(hours=1, minutes=30)
    assert parse("*/15 * * * *")(start) == datetime(2024, 1, 1, 5, 45, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["", "61 * * * *", "* * *", "@sometimes", "@every 0s", "@every soon"])
def test_bad_cron_specs_are_refused(bad):
    with pytest.raises(CronError):
        parse(bad)
    assert issubclass(CronError, ValueError)


def test_fake_clock_moves_only_forward_and_wakes_waiters():
    clock = af.FakeClock(datetime(2024, 1, 1, tzinfo=UTC))
    deadline = clock.now() + timedelta(hours=1)
    clock.advance(timedelta(hours=2))
    clock.wait_until(deadline, timeout=0.01)
    assert clock.now() == datetime(2024, 1, 1, 2, tzinfo=UTC)
    with pytest.raises(ValueError, match="back in time"):
        clock.set(datetime(2023, 1, 1, tzinfo=UTC))


def test_an_adapter_clock_is_its_own_else_the_first_lent():
    """Streamers made without a clock stamp events by the first workflow's (fake) clock."""
    from actorflow.clock import AdapterClock

    mine, lent, later = af.FakeClock(), af.FakeClock(T0_LENT), af.FakeClock(T0_LATER)
    own = AdapterClock(mine)
    own.lend(lent)
    assert own.now() == mine.now()
    borrowed = AdapterClock()
    borrowed.lend(lent)
    borrowed.lend(later)
    assert borrowed.now() == T0_LENT


def test_a_workflow_lends_its_clock_to_a_streamer_made_without_one():
    from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler

    class S(enum.IntEnum):
        A = 1
        B = 2

    clock = af.FakeClock(T0_LENT)
    streamer = MemoryEventStreamer()
    b = af.Builder("lent-clock", Inner, S)
    b.add_step(S.A, lambda run: S.B, S.B)
    b.build(streamer, MemoryRecordStore(), MemoryRoleScheduler(), clock=clock)
    streamer.new_sender("t").send("run-1", 1, {})
    assert streamer.events("t")[0].created_at == T0_LENT


T0_LENT = datetime(2030, 1, 1, tzinfo=UTC)
T0_LATER = datetime(2031, 1, 1, tzinfo=UTC)
