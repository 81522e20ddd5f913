"""The JSON codec checks objects against the declared type's hints, and decodes only JSON that fits."""

from __future__ import annotations

import dataclasses
import enum
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import pytest

import actorflow as af
from actorflow.codec import DELETED_OBJECT, JsonCodec, make_codec


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Part:
    name: str
    count: int = 0


@dataclasses.dataclass
class Kit:
    id: str
    parts: list[Part] = dataclasses.field(default_factory=list)
    by_name: dict[str, Part] = dataclasses.field(default_factory=dict)
    colour: Colour = Colour.RED
    weight: float = 0.0
    when: datetime | None = None
    day: date | None = None
    wait: timedelta = timedelta(0)
    size: Literal["s", "m"] = "s"
    code: int | str = 0
    tags: set[str] = dataclasses.field(default_factory=set)
    pair: tuple[int, str] = (0, "")
    spare: Part | None = None
    checked: bool = False


FULL = Kit(
    id="k",
    parts=[Part("a", 1)],
    by_name={"b": Part("b")},
    colour=Colour.BLUE,
    weight=2,  # an int is a float's value
    when=datetime(2024, 5, 1, tzinfo=UTC),
    day=date(2024, 5, 2),
    wait=timedelta(seconds=3),
    size="m",
    code="c-1",
    tags={"x"},
    pair=(1, "one"),
    spare=Part("s", 2),
    checked=True,
)


@pytest.mark.parametrize(
    ("obj", "path", "got"),
    [
        (dataclasses.replace(FULL, parts=[Part("a", True)]), "Kit.parts[0].count", "bool"),
        (dataclasses.replace(FULL, by_name={"b": {"name": "b"}}), "Kit.by_name['b']", "dict"),
        (dataclasses.replace(FULL, by_name={1: Part("b")}), "Kit.by_name[1]", "int"),
        (dataclasses.replace(FULL, colour="blue"), "Kit.colour", "str"),
        (dataclasses.replace(FULL, weight="2"), "Kit.weight", "str"),
        (dataclasses.replace(FULL, when="2024-05-01"), "Kit.when", "str"),
        (dataclasses.replace(FULL, day=datetime(2024, 5, 2, tzinfo=UTC)), "Kit.day", "datetime"),
        (dataclasses.replace(FULL, wait=3), "Kit.wait", "int"),
        (dataclasses.replace(FULL, size="xl"), "Kit.size", "str"),
        (dataclasses.replace(FULL, code=1.5), "Kit.code", "float"),
        (dataclasses.replace(FULL, tags=["x"]), "Kit.tags", "list"),
        (dataclasses.replace(FULL, pair=(1, 2)), "Kit.pair[1]", "int"),
        (dataclasses.replace(FULL, pair=(1,)), "Kit.pair", "tuple"),
        (dataclasses.replace(FULL, spare=Part(name=None)), "Kit.spare.name", "NoneType"),
        (dataclasses.replace(FULL, checked=1), "Kit.checked", "int"),
        (dataclasses.replace(FULL, id=None), "Kit.id", "NoneType"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_value_not_fitting_its_hint_is_refused_with_its_path(obj, path, got):
    """ObjectTypeError names where (the field path from the type) and what (the value's type).

    The object every case changes one field of round-trips: every hint it uses is supported.
    """
    codec = JsonCodec(Kit)
    assert codec.decode(codec.encode(FULL)) == FULL
    with pytest.raises(af.ObjectTypeError) as raised:
        codec.encode(obj)
    assert (raised.value.path, raised.value.value_type) == (path, got)
    assert f"{path} must be" in str(raised.value)


def test_a_subclass_of_the_declared_dataclass_is_refused():
    """Its extra fields would be stored and could not be decoded back."""

    @dataclasses.dataclass
    class BigKit(Kit):
        extra: str = ""

    with pytest.raises(af.ObjectTypeError, match="expected Kit, got BigKit"):
        JsonCodec(Kit).encode(BigKit(id="k"))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"id":"k","amount":3}', "Kit has no field 'amount'"),
        (b'{"parts":[]}', "Kit needs id, missing"),
        (b'{"id":7}', "Kit.id must be str, got int"),
        (b'{"id":"k","parts":[{"name":"a","count":true}]}', r"Kit.parts\[0\].count must be int, got bool"),
        (b'{"id":"k","parts":[{"name":"a","qty":1}]}', "Part has no field 'qty'"),
        (b'{"id":"k","parts":"ab"}', "Kit.parts must be a JSON array"),
        (b'{"id":"k","wait":"3"}', "Kit.wait must be seconds"),
        (b'{"id":"k","spare":{"count":1}}', "Part needs name"),
        (b'{"id":"k","size":"xl"}', "Kit.size must be"),
        (b"null", "a JSON object for Kit"),
    ],
)
def test_json_that_does_not_fit_the_type_is_refused_not_guessed(data, reason):
    """A foreign key, a missing required field or a wrong type: CodecError (not an object with gaps filled in).

    A missing field that has a default takes it: an object stored before the field was added still decodes.
    """
    codec = JsonCodec(Kit)
    assert codec.decode(b'{"id":"k","parts":[{"name":"a"}]}') == Kit(id="k", parts=[Part("a")])
    with pytest.raises(af.CodecError, match=reason):
        codec.decode(data)


def test_the_deletion_placeholder_decodes_as_the_default_object():
    """What data deletion stores reads as the type's defaults (the original's zero value); a type without them refuses it."""

    @dataclasses.dataclass
    class Defaults:
        id: str = ""

    assert JsonCodec(Defaults).decode(DELETED_OBJECT) == Defaults()
    with pytest.raises(af.CodecError, match="Kit needs id"):
        JsonCodec(Kit).decode(DELETED_OBJECT)


def test_a_workflow_codec_limits_the_encoded_size():
    """make_codec's codec refuses bytes over max_bytes with ObjectTooLarge; None is no limit."""
    limited = make_codec(Part, None, max_bytes=22)
    assert limited.encode(Part("a")) == b'{"name":"a","count":0}'  # 22 bytes: at the limit
    with pytest.raises(af.ObjectTooLarge) as raised:
        limited.encode(Part("ab"))
    assert (raised.value.size, raised.value.limit) == (23, 22)
    assert make_codec(Part, None, max_bytes=None).encode(Part("a" * 100))
