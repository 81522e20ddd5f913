"""The declared object type is enforced on every write, and objects and payloads have a size limit.

A value that is not the workflow's object type (a dict, an int, another dataclass, a
field of the wrong type, however deep) is refused with `ObjectTypeError` (a `CodecError`
and a `TypeError`) before anything is stored; an encoded object or a callback payload
over ``max_object_bytes`` with `ObjectTooLarge`. From a step or a callback either is
that function's error, counted like any other. Stored JSON that does not fit the type is
refused, not guessed. Each case then shows the workflow still works: another run on the
same (one) shard completes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from typing import Any

import pytest

import actorflow as af
from actorflow.engine.failures import AUTO_PAUSE_REASON
from tests.model import Order, Status


@dataclasses.dataclass
class Line:
    sku: str = ""
    qty: int = 0


@dataclasses.dataclass
class Basket:
    id: str = ""
    lines: list[Line] = dataclasses.field(default_factory=list)
    note: str | None = None


def _baskets(calls: list[str] | None = None, step: Any = None) -> af.Builder[Basket, Status]:
    """STARTED -> DONE; the step (by default one that adds nothing) logs the runs it ran in ``calls``."""
    log = calls if calls is not None else []

    def finish(run: af.Run[Basket, Status]) -> Status:
        log.append(run.foreign_id)
        if step is not None:
            step(run)
        return Status.DONE

    b = af.Builder("baskets", Basket, Status)
    b.add_step(Status.STARTED, finish, Status.DONE)
    return b


def _nothing_stored(wf: af.Workflow[Any, Status], foreign_id: str) -> None:
    with pytest.raises(af.RecordNotFound):
        wf.record_store.latest(wf.name, foreign_id)
    assert wf.record_store.list(wf.name) == []
    assert wf.record_store.list_outbox_events(wf.name, 10) == []


def _another_run_completes(wf: af.Workflow[Basket, Status]) -> None:
    """A good run triggered after the refused one is stepped to DONE (the shard is not blocked)."""
    run_id = wf.trigger("good", Basket(id="good", lines=[Line("apple", 2)]))
    done = wf.await_status("good", run_id, Status.DONE, timeout=5)
    assert done.object == Basket(id="good", lines=[Line("apple", 2)])


BAD_OBJECTS = {
    "dict": ({"id": "b-1", "lines": []}, "Basket"),
    "int": (5, "Basket"),
    "another dataclass": (Order(id="b-1"), "Basket"),
    "a field of the wrong type": (Basket(id=7), "Basket.id"),  # type: ignore[arg-type]
    "a nested field of the wrong type": (Basket(lines=[Line("a", 1), Line("b", "2")]), "Basket.lines[1].qty"),  # type: ignore[arg-type]
    "bool for int": (Basket(lines=[Line("a", True)]), "Basket.lines[0].qty"),
    "a dict for a nested dataclass": (Basket(lines=[{"sku": "a", "qty": 1}]), "Basket.lines[0]"),  # type: ignore[list-item]
}


# -- 1. the declared type -------------------------------------------------------------------------


@pytest.mark.parametrize(("bad", "path"), BAD_OBJECTS.values(), ids=BAD_OBJECTS.keys())
def test_a_trigger_with_an_object_not_of_the_declared_type_is_refused(start, bad, path):
    """ObjectTypeError (a CodecError and a TypeError) naming the field path; nothing stored; the shard goes on."""
    wf = start(_baskets())
    with pytest.raises(af.ObjectTypeError) as raised:
        wf.trigger("b-1", bad)
    error = raised.value
    assert isinstance(error, af.CodecError)
    assert isinstance(error, TypeError)
    assert isinstance(error, af.ActorflowError)
    assert error.path == path
    assert error.object_type is Basket
    assert error.value_type in str(error)
    assert path in str(error)
    _nothing_stored(wf, "b-1")
    _another_run_completes(wf)


def test_trigger_many_with_one_object_not_of_the_declared_type_stores_none(build):
    """One bad item refuses the whole call before the commit: no run of the batch is stored."""
    wf = build(_baskets())
    with pytest.raises(af.ObjectTypeError, match=r"Basket\.id"):
        wf.trigger_many([("b-1", Basket(id="b-1")), ("b-2", Basket(id=2))])  # type: ignore[list-item]
    _nothing_stored(wf, "b-1")


def test_a_user_codec_gets_the_declared_type_checked(start):
    """With an (encode, decode) pair, an object that is not an instance of the declared type never reaches encode."""
    encoded: list[object] = []

    def encode(basket: Basket) -> bytes:
        encoded.append(basket)
        return json.dumps(dataclasses.asdict(basket)).encode()

    def decode(data: bytes) -> Basket:
        fields = json.loads(data)
        return Basket(id=fields["id"], lines=[Line(**line) for line in fields["lines"]], note=fields["note"])

    b = af.Builder("baskets", Basket, Status, codec=(encode, decode))
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)
    wf = start(b)
    with pytest.raises(af.ObjectTypeError, match="expected Basket, got dict"):
        wf.trigger("b-1", {"id": "b-1", "lines": [], "note": None})
    assert encoded == []
    _nothing_stored(wf, "b-1")
    _another_run_completes(wf)


def _paused_by_its_step(wf: af.Workflow[Basket, Status], run_id: str, poll_until: Any) -> af.Record:
    """The run once its step's error paused it (pause_after_err_count=1): where it was, as it was."""
    poll_until(lambda: wf.record_store.lookup(run_id).run_state is af.RunState.PAUSED, what="the automatic pause")
    record = wf.record_store.lookup(run_id)
    assert "automatically paused" in record.meta.run_state_reason  # at the error limit, or as unreadable
    assert (record.status, record.meta.version) == (Status.STARTED, 2)  # the pause only: the result not stored
    return record


def _step_errors(caplog: pytest.LogCaptureFixture, run_id: str) -> str:
    return "\n".join(
        r.getMessage() for r in caplog.records if "step error" in r.getMessage() and run_id in r.getMessage()
    )


def test_a_step_leaving_an_object_not_of_the_declared_type_is_a_step_error(start, poll_until, caplog):
    """The step's result is not stored: the run is paused at its limit where it was, its object unchanged."""

    def spoil(run: af.Run[Basket, Status]) -> None:
        if run.foreign_id == "b-1":
            run.object.lines.append(Line("pear", True))

    wf = start(_baskets(step=spoil), defaults=af.Options(pause_after_err_count=1), pause_retry=None)
    with caplog.at_level(logging.WARNING, logger="actorflow"):
        run_id = wf.trigger("b-1", Basket(id="b-1"))
        record = _paused_by_its_step(wf, run_id, poll_until)
    assert record.meta.run_state_reason == AUTO_PAUSE_REASON
    assert wf.codec.decode(record.object) == Basket(id="b-1")
    assert "Basket.lines[0].qty must be int, got bool" in _step_errors(caplog, run_id)
    _another_run_completes(wf)


def test_a_callback_leaving_an_object_not_of_the_declared_type_raises_and_changes_nothing(build):
    """The callback's StepError carries the ObjectTypeError; the run stays at its status and version."""
    b = af.Builder("baskets", Basket, Status)
    b.add_step(Status.STARTED, lambda run: Status.AWAITING, Status.AWAITING)

    def approve(run: af.Run[Basket, Status], payload: bytes) -> Status:
        run.object = Order(id=run.foreign_id)  # type: ignore[assignment]
        return Status.APPROVED

    b.add_callback(Status.AWAITING, approve, Status.APPROVED)
    wf = build(b)
    run_id = wf.trigger("b-1", Basket(id="b-1"), start_at=Status.AWAITING)
    with pytest.raises(af.StepError) as raised:
        wf.callback("b-1", Status.AWAITING, b"{}")
    assert isinstance(raised.value.__cause__, af.ObjectTypeError)
    record = wf.record_store.lookup(run_id)
    assert (record.status, record.run_state, record.meta.version) == (Status.AWAITING, af.RunState.INITIATED, 1)


def test_a_stored_object_of_another_type_is_refused_not_guessed(start, poll_until):
    """A run whose stored JSON is another dataclass's is not handed to the step as a guessed Basket.

    Its decoding fails (a CodecError), so it is paused untouched (as unreadable, or at
    pause_after_err_count=1 where a failed decode counts as a step error); the step never
    sees it.
    """
    calls: list[str] = []
    wf = start(_baskets(calls), defaults=af.Options(pause_after_err_count=1), pause_retry=None)
    now = wf.engine.clock.now()
    foreign = af.Record(
        workflow_name=wf.name,
        foreign_id="b-1",
        run_id=str(uuid.uuid4()),
        run_state=af.RunState.INITIATED,
        status=Status.STARTED,
        object=json.dumps(dataclasses.asdict(Order(id="b-1", amount=3))).encode(),
        created_at=now,
        updated_at=now,
        meta=af.RecordMeta(version=1, status_description="Started"),
    )
    wf.record_store.store(foreign)
    record = _paused_by_its_step(wf, foreign.run_id, poll_until)
    assert record.object == foreign.object
    _another_run_completes(wf)
    assert calls == ["good"]


# -- 2. the size limit ----------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "size"), [(None, 2 << 20), (500, 500)], ids=["no limit", "exactly at the limit"])
def test_an_object_within_the_limit_is_stored(build, limit, size):
    """``max_object_bytes=None`` lifts the limit; an object of exactly the limit is accepted."""
    wf = build(_baskets(), max_object_bytes=limit)
    empty = len(wf.codec.encode(Basket()))
    run_id = wf.trigger("b-1", Basket(id="x" * (size - empty)))
    assert len(wf.record_store.lookup(run_id).object) == size


@pytest.mark.parametrize(
    ("limit", "size"), [({}, (1 << 20) + 1), ({"max_object_bytes": 500}, 501)], ids=["1 MiB default", "500"]
)
def test_a_trigger_with_an_object_over_the_limit_is_refused(start, limit, size):
    """ObjectTooLarge (a ValueError) naming the size and the limit; nothing stored; the shard goes on."""
    wf = start(_baskets(), **limit)
    empty = len(wf.codec.encode(Basket()))
    with pytest.raises(af.ObjectTooLarge) as raised:
        wf.trigger("b-1", Basket(id="x" * (size - empty)))
    assert isinstance(raised.value, ValueError)
    assert (raised.value.size, raised.value.limit) == (size, size - 1)
    assert "max_object_bytes" in str(raised.value)
    _nothing_stored(wf, "b-1")
    _another_run_completes(wf)


def test_a_step_growing_the_object_over_the_limit_is_a_step_error(start, poll_until, caplog):
    """The grown object is not stored: the run is paused at its limit where it was, as it was."""

    def grow(run: af.Run[Basket, Status]) -> None:
        if run.foreign_id == "b-1":
            run.object.note = "x" * 1000

    wf = start(
        _baskets(step=grow), defaults=af.Options(pause_after_err_count=1), pause_retry=None, max_object_bytes=500
    )
    with caplog.at_level(logging.WARNING, logger="actorflow"):
        run_id = wf.trigger("b-1", Basket(id="b-1"))
        record = _paused_by_its_step(wf, run_id, poll_until)
    assert record.meta.run_state_reason == AUTO_PAUSE_REASON
    assert wf.codec.decode(record.object) == Basket(id="b-1")
    assert "the encoded Basket is 1,033 bytes, over the workflow's max_object_bytes of 500" in _step_errors(
        caplog, run_id
    )
    _another_run_completes(wf)


def test_a_callback_payload_over_the_limit_is_refused_before_the_callback(start):
    """ObjectTooLarge at once: the callback is not called, the run not moved; a payload at the limit is handed over."""
    payloads: list[int] = []
    b = af.Builder("baskets", Basket, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)

    def approve(run: af.Run[Basket, Status], payload: bytes) -> Status:
        payloads.append(len(payload))
        return Status.APPROVED

    b.add_callback(Status.AWAITING, approve, Status.APPROVED)
    wf = start(b, max_object_bytes=500)
    run_id = wf.trigger("b-1", Basket(id="b-1"), start_at=Status.AWAITING)
    with pytest.raises(af.ObjectTooLarge, match="callback payload"):
        wf.callback("b-1", Status.AWAITING, b"x" * 501)
    assert payloads == []
    record = wf.record_store.lookup(run_id)
    assert (record.status, record.meta.version) == (Status.AWAITING, 1)
    _another_run_completes(wf)
    wf.callback("b-1", Status.AWAITING, b"x" * 500)
    assert payloads == [500]
    assert wf.record_store.lookup(run_id).status == Status.APPROVED


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1MB"], ids=repr)
def test_a_max_object_bytes_that_is_not_a_positive_int_is_refused_at_build(build, bad):
    """BuildError (a ValueError) naming the option."""
    with pytest.raises(af.BuildError, match="max_object_bytes"):
        build(_baskets(), max_object_bytes=bad)
