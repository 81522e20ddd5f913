"""pydantic v2 models and msgspec Structs as workflow objects, on every adapter stack.

The codec comes from the declared type (no codec to write): each round-trips through
every store as JSON; an object that does not fit its model is refused with
`ObjectTypeError` before anything is stored, at trigger and from a step.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("pydantic", reason="the models tests need pydantic (the dev extra)")
pytest.importorskip("msgspec", reason="the models tests need msgspec (the dev extra)")

import msgspec
import pydantic

import actorflow as af
from actorflow.codec import DELETED_OBJECT, make_codec
from actorflow.models import MsgspecCodec, PydanticCodec
from tests.model import Status

pytestmark = pytest.mark.timeout(60)


class Invoice(pydantic.BaseModel):
    id: str = ""
    amount_cents: int = 0
    lines: list[str] = []
    paid: bool = False


class Parcel(msgspec.Struct):
    id: str = ""
    weight_kg: float = 0.0
    tags: list[str] = msgspec.field(default_factory=list)


def _invoices() -> af.Builder[Invoice, Status]:
    b = af.Builder("invoices", Invoice, Status)

    def charge(run: af.Run[Invoice, Status]) -> Status:
        run.object.lines.append("charged")
        run.object.paid = True
        return Status.CHARGED

    async def finish(run: af.Run[Invoice, Status]) -> Status:  # models and async steps mix
        run.object.lines.append("finished")
        return Status.DONE

    b.add_step(Status.STARTED, charge, Status.CHARGED)
    b.add_step(Status.CHARGED, finish, Status.DONE)
    return b


def _parcels() -> af.Builder[Parcel, Status]:
    b = af.Builder("parcels", Parcel, Status)

    def ship(run: af.Run[Parcel, Status]) -> Status:
        run.object.tags.append("shipped")
        return Status.SHIPPED

    b.add_step(Status.STARTED, ship, Status.SHIPPED)
    return b


def test_a_pydantic_model_round_trips_through_the_store(start):
    wf = start(_invoices())
    run_id = wf.trigger("inv-1", Invoice(id="inv-1", amount_cents=1250))
    run = wf.await_status("inv-1", run_id, Status.DONE, timeout=15)
    assert run.object == Invoice(id="inv-1", amount_cents=1250, lines=["charged", "finished"], paid=True)
    assert isinstance(run.object, Invoice)
    stored = json.loads(wf.record_store.lookup(run_id).object)
    assert stored == {"id": "inv-1", "amount_cents": 1250, "lines": ["charged", "finished"], "paid": True}


def test_a_msgspec_struct_round_trips_through_the_store(start):
    wf = start(_parcels())
    run_id = wf.trigger("p-1", Parcel(id="p-1", weight_kg=2.5))
    run = wf.await_status("p-1", run_id, Status.SHIPPED, timeout=15)
    assert run.object == Parcel(id="p-1", weight_kg=2.5, tags=["shipped"])
    assert json.loads(wf.record_store.lookup(run_id).object) == {"id": "p-1", "weight_kg": 2.5, "tags": ["shipped"]}


@pytest.mark.parametrize("kind", ["pydantic", "msgspec"])
def test_an_object_that_does_not_fit_its_model_is_refused_and_nothing_is_stored(build, kind):
    if kind == "pydantic":
        wf: Any = build(_invoices())
        bad: Any = Invoice(id="bad")
        bad.amount_cents = "a lot"  # pydantic does not validate assignments by default
        other: Any = Parcel(id="other")
    else:
        wf = build(_parcels())
        bad = Parcel(id="bad")
        bad.weight_kg = "heavy"  # msgspec never validates assignments
        other = Invoice(id="other")
    for wrong in (bad, other, {"id": "x"}):
        with pytest.raises(af.ObjectTypeError):
            wf.trigger("x-1", wrong)
    assert wf.record_store.list(wf.name) == []


def test_a_step_leaving_a_wrong_type_in_a_model_is_a_step_error_and_stores_nothing(start, poll_until, run_state_of):
    b = af.Builder("invoices", Invoice, Status)

    def charge(run: af.Run[Invoice, Status]) -> Status:
        run.object.amount_cents = "not cents"  # type: ignore[assignment]
        return Status.CHARGED

    b.add_step(Status.STARTED, charge, Status.CHARGED).with_options(pause_after_err_count=2)
    wf = start(b, pause_retry=None)
    run_id = wf.trigger("inv-bad", Invoice(id="inv-bad"))
    poll_until(lambda: run_state_of(wf, run_id) is af.RunState.PAUSED, what="the pause after the step errors")
    record = wf.record_store.lookup(run_id)
    assert (record.status, json.loads(record.object)["amount_cents"]) == (Status.STARTED, 0)


@pytest.mark.parametrize(("cls", "codec_type"), [(Invoice, PydanticCodec), (Parcel, MsgspecCodec)])
def test_the_codec_comes_from_the_declared_type_and_refuses_json_that_does_not_fit(cls, codec_type):
    codec = make_codec(cls, None)
    assert isinstance(codec.inner, codec_type)
    for bad in (b'{"id": 5}', b"[1, 2]", b"not json", b'{"id": "x", "weight_kg": "heavy", "amount_cents": "many"}'):
        with pytest.raises(af.CodecError):
            codec.decode(bad)
    assert codec.decode(DELETED_OBJECT) == cls()  # a deleted run reads as the default object
    assert codec.decode(codec.encode(cls(id="z"))) == cls(id="z")
