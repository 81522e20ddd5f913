"""Codecs for pydantic v2 models and msgspec Structs as workflow objects (chosen from the declared type).

`model_codec` is asked by `actorflow.codec.make_codec` first: a workflow whose object type
is a ``pydantic.BaseModel`` or a ``msgspec.Struct`` gets the matching JSON codec, with no
codec to write; any other type gets actorflow's own JSON codec for dataclasses. Neither
library is a dependency: each is looked at only if the program has imported it already
(the type could not be one of its classes otherwise).

Both codecs store JSON (never pickle), and check on both sides. Encoding refuses an object
whose fields no longer fit the model (a step assigned a wrong type: pydantic does not
validate assignments by default, msgspec never does) with `ObjectTypeError`; decoding
validates against the model and refuses what does not fit with `CodecError`. The
data-deletion placeholder reads as the model's default object, as for dataclasses.
"""

from __future__ import annotations

import sys
from typing import Any, Generic, TypeVar

from actorflow._deleted import DELETED_OBJECT
from actorflow.errors import CodecError, ObjectTypeError

__all__ = ["MsgspecCodec", "PydanticCodec", "model_codec"]

T = TypeVar("T")


def model_codec(cls: Any) -> Any:
    """The codec for ``cls`` when it is a pydantic model or a msgspec Struct, else ``None``."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(cls, type) and issubclass(cls, pydantic.BaseModel):
        return PydanticCodec(cls)
    msgspec = sys.modules.get("msgspec")
    if msgspec is not None and isinstance(cls, type) and issubclass(cls, msgspec.Struct):
        return MsgspecCodec(cls)
    return None


class PydanticCodec(Generic[T]):
    """JSON for a pydantic v2 model: ``model_dump_json`` checked, ``model_validate_json`` on the way back."""

    def __init__(self, cls: type[T]) -> None:
        import pydantic  # noqa: PLC0415 - only for a model's workflow
        import pydantic_core  # noqa: PLC0415

        self._cls: Any = cls
        self._errors: tuple[type[BaseException], ...] = (
            pydantic.ValidationError,
            pydantic_core.PydanticSerializationError,
        )

    def encode(self, obj: T) -> bytes:
        """The model's JSON; `ObjectTypeError` when a field holds what its annotation does not allow."""
        model: Any = obj
        try:
            data: bytes = model.model_dump_json(warnings="error").encode()
            self._cls.model_validate_json(data)  # a field assigned a wrong type after construction
        except self._errors as exc:
            msg = f"cannot encode {self._cls.__name__}: {_first_line(exc)}"
            raise ObjectTypeError(msg, object_type=self._cls) from None
        return data

    def decode(self, data: bytes) -> T:
        """The model validated from ``data``; `CodecError` when it does not fit."""
        try:
            if data == DELETED_OBJECT:
                return self._cls.model_validate({})  # type: ignore[no-any-return]
            return self._cls.model_validate_json(data)  # type: ignore[no-any-return]
        except self._errors as exc:
            msg = f"cannot decode {self._cls.__name__} from JSON: {_first_line(exc)}"
            raise CodecError(msg) from None


class MsgspecCodec(Generic[T]):
    """JSON for a msgspec Struct: msgspec's own encoder, and its typed decoder on the way back."""

    def __init__(self, cls: type[T]) -> None:
        import msgspec  # noqa: PLC0415 - only for a Struct's workflow

        self._cls = cls
        self._encoder = msgspec.json.Encoder()
        self._decoder: Any = msgspec.json.Decoder(cls)
        self._errors: tuple[type[BaseException], ...] = (
            msgspec.ValidationError,
            msgspec.DecodeError,
            msgspec.EncodeError,
            TypeError,
        )
        self._convert = msgspec.convert

    def encode(self, obj: T) -> bytes:
        """The Struct's JSON; `ObjectTypeError` when a field holds what its annotation does not allow."""
        try:
            data = self._encoder.encode(obj)
            self._decoder.decode(data)  # msgspec does not check types when encoding
        except self._errors as exc:
            msg = f"cannot encode {self._cls.__name__}: {_first_line(exc)}"
            raise ObjectTypeError(msg, object_type=self._cls) from None
        return data

    def decode(self, data: bytes) -> T:
        """The Struct decoded and validated from ``data``; `CodecError` when it does not fit."""
        try:
            if data == DELETED_OBJECT:
                return self._convert({}, self._cls)
            return self._decoder.decode(data)  # type: ignore[no-any-return]
        except self._errors as exc:
            msg = f"cannot decode {self._cls.__name__} from JSON: {_first_line(exc)}"
            raise CodecError(msg) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(line.strip() for line in text.splitlines()[:3])
