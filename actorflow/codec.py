"""Codecs turn a run's object into bytes and back. JSON for dataclasses by default.

The default codec is built per type once: decoding walks the dataclass's type hints, so
nested dataclasses, lists, dicts, optionals, enums and datetimes round-trip.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from actorflow.errors import CodecError

__all__ = ["Codec", "FunctionCodec", "JsonCodec", "make_codec"]

T = TypeVar("T")


@runtime_checkable
class Codec(Protocol[T]):
    """Encodes objects of one type to bytes and back."""

    def encode(self, obj: T) -> bytes:
        """Bytes for ``obj``; raise on an object that cannot be encoded."""
        ...

    def decode(self, data: bytes) -> T:
        """The object for ``data``; raise on bytes that do not decode."""
        ...


class FunctionCodec(Generic[T]):
    """A codec from a user's ``(encode, decode)`` pair."""

    def __init__(self, encode: Callable[[T], bytes], decode: Callable[[bytes], T]) -> None:
        self._encode = encode
        self._decode = decode

    def encode(self, obj: T) -> bytes:
        """Encode with the user's function; its failure becomes a `CodecError`."""
        try:
            return self._encode(obj)
        except CodecError:
            raise
        except Exception as exc:
            msg = f"the codec's encode failed: {exc}"
            raise CodecError(msg) from exc

    def decode(self, data: bytes) -> T:
        """Decode with the user's function; its failure becomes a `CodecError`."""
        try:
            return self._decode(data)
        except CodecError:
            raise
        except Exception as exc:
            msg = f"the codec's decode failed: {exc}"
            raise CodecError(msg) from exc


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # a dataclass's field names, looked up once per class


def _default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        names = _FIELD_NAMES.get(cls)
        if names is None:
            names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(obj))
        return {name: getattr(obj, name) for name in names}
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return obj.total_seconds()
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode()
    msg = f"object of type {type(obj).__name__} is not JSON serialisable"
    raise TypeError(msg)


Converter = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


class _Builder:
    """Builds converters from JSON values to typed values, cached per type."""

    def __init__(self) -> None:
        self._cache: dict[Any, Converter] = {}

    def converter(self, tp: Any) -> Converter:
        if tp in self._cache:
            return self._cache[tp]
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        conv: Converter
        if tp is Any or tp in (str, int, float, bool, type(None), object):
            conv = _identity
            if tp is float:
                conv = _to_float
        elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
            conv = self._dataclass(tp)
        elif isinstance(tp, type) and issubclass(tp, enum.Enum):
            conv = tp
        elif tp is datetime:
            conv = datetime.fromisoformat
        elif tp is date:
            conv = date.fromisoformat
        elif tp is timedelta:
            conv = _to_timedelta
        elif tp is bytes:
            conv = _to_bytes
        elif origin in (list, set, frozenset, tuple) or origin is typing.Sequence:
            conv = self._sequence(origin, args)
        elif origin is dict or origin is typing.Mapping:
            inner = self.converter(args[1]) if len(args) == 2 else _identity  # noqa: PLR2004
            conv = _mapping(inner)
        elif origin in (typing.Union, types.UnionType):
            conv = self._union(args)
        elif origin is typing.Literal:
            conv = _identity
        else:
            conv = _identity
        self._cache[tp] = conv
        return conv

    def _dataclass(self, cls: type) -> Converter:
        self._cache[cls] = lambda v: build(v)  # noqa: PLW0108 - recursion guard: build is defined below
        hints = typing.get_type_hints(cls)
        fields = [(f.name, self.converter(hints.get(f.name, Any))) for f in dataclasses.fields(cls) if f.init]

        def build(value: Any) -> Any:
            if value is None:
                return None
            if not isinstance(value, dict):
                msg = f"expected a JSON object for {cls.__name__}, got {type(value).__name__}"
                raise CodecError(msg)
            kwargs = {name: conv(value[name]) for name, conv in fields if name in value}
            return cls(**kwargs)

        return build

    def _sequence(self, origin: Any, args: tuple[Any, ...]) -> Converter:
        if origin is tuple and args and args[-1] is not Ellipsis:
            convs = [self.converter(a) for a in args]
            return lambda v: tuple(c(x) for c, x in zip(convs, v, strict=False))
        inner = self.converter(args[0]) if args else _identity
        make: Callable[[Any], Any] = list if origin in (list, typing.Sequence) else origin
        return lambda v: None if v is None else make(inner(x) for x in v)

    def _union(self, args: tuple[Any, ...]) -> Converter:
        real = [a for a in args if a is not type(None)]
        if len(real) == 1:
            inner = self.converter(real[0])
            return lambda v: None if v is None else inner(v)
        return _identity


def _to_float(value: Any) -> Any:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _to_timedelta(value: Any) -> Any:
    return None if value is None else timedelta(seconds=value)


def _to_bytes(value: Any) -> Any:
    return None if value is None else str(value).encode()


def _mapping(inner: Converter) -> Converter:
    return lambda v: None if v is None else {k: inner(x) for k, x in v.items()}


_BUILDER = _Builder()


class JsonCodec(Generic[T]):
    """UTF-8 JSON for a dataclass (or any JSON-native type), decoded back to ``cls``."""

    def __init__(self, cls: type[T]) -> None:
        self._cls = cls
        self._convert = _BUILDER.converter(cls)
        self._encoder = json.JSONEncoder(default=_default, separators=(",", ":"), allow_nan=False)

    def encode(self, obj: T) -> bytes:
        """The JSON bytes of ``obj``; `CodecError` when it holds something JSON cannot."""
        try:
            return self._encoder.encode(obj).encode()
        except (TypeError, ValueError) as exc:
            msg = f"cannot encode {type(obj).__name__} as JSON: {exc}"
            raise CodecError(msg) from exc

    def decode(self, data: bytes) -> T:
        """The object for JSON ``data``; `CodecError` when the bytes do not fit ``cls``."""
        try:
            value: T = self._convert(json.loads(data))
        except CodecError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            msg = f"cannot decode {self._cls.__name__} from JSON: {exc}"
            raise CodecError(msg) from exc
        return value


def make_codec(cls: type[T], codec: Codec[T] | tuple[Callable[[T], bytes], Callable[[bytes], T]] | None) -> Codec[T]:
    """The codec a builder uses: the user's (an object or an encode/decode pair) or JSON."""
    if codec is None:
        return JsonCodec(cls)
    if isinstance(codec, tuple):
        encode, decode = codec
        return FunctionCodec(encode, decode)
    return codec
