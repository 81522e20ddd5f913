"""Codecs turn a run's object into bytes and back. JSON for dataclasses by default.

The default codec is built per type once, from one walk of the type's hints that yields
two functions per type: a converter (JSON value -> typed value, for decode) and a checker
(does a value fit the hint, for encode and after decode). So nested dataclasses, lists,
dicts, optionals, enums and datetimes round-trip, an object that is not what the workflow
declared is refused before it is stored (`ObjectTypeError`), and JSON that does not fit
the type (a missing required field, a wrong type, a key the dataclass does not have) is
refused instead of guessed (`CodecError`).

A workflow's codec (`make_codec`) is a `CheckedCodec`: the user's codec or the JSON one,
with the declared type checked and the encoded size held to ``max_object_bytes``.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import json
import types
import typing
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from actorflow._deleted import DELETED_OBJECT
from actorflow.errors import CodecError, ObjectTooLarge, ObjectTypeError
from actorflow.models import model_codec

__all__ = [
    "DELETED_OBJECT",
    "MAX_OBJECT_BYTES",
    "CheckedCodec",
    "Codec",
    "FunctionCodec",
    "JsonCodec",
    "check_size",
    "make_codec",
]

T = TypeVar("T")

MAX_OBJECT_BYTES = 1 << 20
"""The default limit of an encoded object and of a callback payload: 1 MiB."""


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
    names = _FIELD_NAMES.get(type(obj))  # a dataclass seen before (the common case): no introspection
    if names is None and dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = _FIELD_NAMES[type(obj)] = tuple(f.name for f in dataclasses.fields(obj))
    if names is not None:
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
Checker = Callable[[Any], None]


class _Mismatch(Exception):
    """A value does not fit its type hint; ``path`` is filled in as it unwinds (innermost first)."""

    def __init__(self, expected: str, value: Any) -> None:
        super().__init__(expected)
        self.expected = expected
        self.value = value
        self.path: list[str] = []

    def where(self, root: str) -> str:
        """The field path from ``root``: ``Order.items[2].qty``."""
        return root + "".join(reversed(self.path))


def _identity(value: Any) -> Any:
    return value


def _anything(_value: Any) -> None:
    return None


def _name(tp: Any) -> str:
    """A type hint as a user wrote it: ``int``, ``list[str]``, ``Order | None``."""
    return tp.__name__ if isinstance(tp, type) and not typing.get_args(tp) else str(tp).replace("typing.", "")


def _instance_of(tp: type, expected: str) -> Checker:
    def check(value: Any) -> None:
        if not isinstance(value, tp):
            raise _Mismatch(expected, value)

    return check


def _check_int(value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):  # bool is an int to Python, not to the hint
        raise _Mismatch("int", value)


def _check_float(value: Any) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):  # an int is a float's value in JSON
        raise _Mismatch("float", value)


def _check_date(value: Any) -> None:
    if not isinstance(value, date) or isinstance(value, datetime):  # a datetime's text is no date's
        raise _Mismatch("date", value)


def _check_none(value: Any) -> None:
    if value is not None:
        raise _Mismatch("None", value)


_SCALARS: dict[Any, tuple[Converter, Checker]] = {
    str: (_identity, _instance_of(str, "str")),
    int: (_identity, _check_int),
    bool: (_identity, _instance_of(bool, "bool")),
    type(None): (_identity, _check_none),
    datetime: (datetime.fromisoformat, _instance_of(datetime, "datetime")),
    date: (date.fromisoformat, _check_date),
}
_BARE = {list: list[Any], set: set[Any], frozenset: frozenset[Any], tuple: tuple[Any, ...], dict: dict[Any, Any]}


class _Builder:
    """Builds, per type hint, its converter (JSON value -> typed value) and checker (value fits?), cached."""

    def __init__(self) -> None:
        self._cache: dict[Any, tuple[Converter, Checker]] = {}

    def pair(self, tp: Any) -> tuple[Converter, Checker]:
        """The converter of ``tp`` (strict where a conversion could disguise a wrong value) and its checker.

        The checker raises `_Mismatch` when a value does not fit ``tp``; one walk of the hint makes both.
        """
        found = self._cache.get(tp)
        if found is None:
            found = self._cache[tp] = self._make(tp)
        return found

    def _make(self, tp: Any) -> tuple[Converter, Checker]:
        tp = _BARE.get(tp, tp)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if tp is Any or tp is object or isinstance(tp, TypeVar):
            return _identity, _anything
        if tp in _SCALARS:
            return _SCALARS[tp]
        if tp is float:
            return _to_float, _check_float
        if tp is timedelta:
            return _to_timedelta, _instance_of(timedelta, "timedelta")
        if tp is bytes:
            return _to_bytes, _instance_of(bytes, "bytes")
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self._dataclass(tp)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return tp, _instance_of(tp, tp.__name__)
        if origin in (list, set, frozenset, tuple, collections.abc.Sequence):
            return self._sequence(tp, origin, args)
        if origin in (dict, collections.abc.Mapping):
            return self._mapping(tp, args)
        if origin in (typing.Union, types.UnionType):
            return self._union(tp, args)
        if origin is typing.Literal:
            return _identity, _literal(tp, args)
        supertype = getattr(tp, "__supertype__", None)  # a NewType: its supertype's rules
        if supertype is not None:
            return self.pair(supertype)
        if isinstance(tp, type):  # another class: its instances only (a str subclass is built from its text)
            return _from_json_base(tp), _instance_of(tp, tp.__name__)
        return _identity, _anything  # a hint this walk does not know (a generic dataclass...): not checked

    def _dataclass(self, cls: type) -> tuple[Converter, Checker]:
        # Recursion guard (a dataclass holding itself): the cache points at functions defined below.
        self._cache[cls] = (lambda v: build(v), lambda v: check(v))  # noqa: PLW0108
        every = dataclasses.fields(cls)
        try:
            hints = typing.get_type_hints(cls)
            pairs = [(f.name, self.pair(hints.get(f.name, Any))) for f in every]
        except Exception:
            del self._cache[cls]  # not a half-built entry: the next codec for it raises the same
            raise
        init = [(name, convert) for f, (name, (convert, _)) in zip(every, pairs, strict=True) if f.init]
        checks = [(name, chk) for name, (_, chk) in pairs]
        known = frozenset(f.name for f in every)  # init=False fields are encoded too: accepted, not passed
        required = [
            f.name
            for f in every
            if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]

        def build(value: Any) -> Any:
            if not isinstance(value, dict):
                raise _Mismatch(f"a JSON object for {cls.__name__}", value)
            if not known.issuperset(value):
                unknown = ", ".join(sorted(repr(k) for k in value if k not in known))
                msg = f"{cls.__name__} has no field {unknown}"
                raise CodecError(msg)
            missing = [name for name in required if name not in value]
            if missing:
                msg = f"{cls.__name__} needs {', '.join(missing)}, missing from the JSON"
                raise CodecError(msg)
            kwargs = {}
            name = ""
            try:
                for name, convert in init:
                    if name in value:
                        kwargs[name] = convert(value[name])
            except _Mismatch as exc:
                exc.path.append(f".{name}")
                raise
            return cls(**kwargs)

        def check(value: Any) -> None:
            if type(value) is not cls:  # a subclass's extra fields would not decode
                raise _Mismatch(cls.__name__, value)
            name = ""
            try:
                for name, chk in checks:
                    chk(getattr(value, name))
            except _Mismatch as exc:
                exc.path.append(f".{name}")
                raise

        return build, check

    def _sequence(self, tp: Any, origin: Any, args: tuple[Any, ...]) -> tuple[Converter, Checker]:
        expected = _name(tp)
        kind: Any = (list, tuple) if origin is collections.abc.Sequence else origin
        if origin is tuple and args and args[-1] is not Ellipsis:
            pairs = [self.pair(a) for a in args]

            def build_fixed(value: Any) -> Any:
                _json_array(value, expected)
                return tuple(convert(x) for (convert, _), x in zip(pairs, value, strict=False))

            def check_fixed(value: Any) -> None:
                if not isinstance(value, tuple) or len(value) != len(pairs):
                    raise _Mismatch(expected, value)
                _each(value, [chk for _, chk in pairs])

            return build_fixed, check_fixed
        convert, inner = self.pair(args[0]) if args else (_identity, _anything)
        make: Callable[[Any], Any] = list if origin is collections.abc.Sequence else origin

        def build(value: Any) -> Any:
            _json_array(value, expected)
            return make(convert(x) for x in value)

        def check(value: Any) -> None:
            if not isinstance(value, kind) or isinstance(value, str):
                raise _Mismatch(expected, value)
            if inner is not _anything:
                _each(value, inner)

        return build, check

    def _mapping(self, tp: Any, args: tuple[Any, ...]) -> tuple[Converter, Checker]:
        expected = _name(tp)
        convert, inner = self.pair(args[1]) if len(args) == 2 else (_identity, _anything)  # noqa: PLR2004
        # JSON keys are text: keys are checked only when declared str (others come back as text anyway).
        check_key = args[0] is str if args else False

        def build(value: Any) -> Any:
            if not isinstance(value, dict):
                raise _Mismatch(f"a JSON object for {expected}", value)
            return {k: convert(x) for k, x in value.items()}

        def check(value: Any) -> None:
            if not isinstance(value, dict):
                raise _Mismatch(expected, value)
            key = None
            try:
                for key, item in value.items():
                    if check_key:
                        _check_key(key)
                    inner(item)
            except _Mismatch as exc:
                exc.path.append(f"[{key!r}]")
                raise

        return build, check

    def _union(self, tp: Any, args: tuple[Any, ...]) -> tuple[Converter, Checker]:
        expected = _name(tp)
        pairs = [self.pair(a) for a in args]
        real = [a for a in args if a is not type(None)]
        if len(real) == 1:  # Optional[X]: None, or X's rules (and X's path on a mismatch)
            convert, inner = self.pair(real[0])
            return (lambda v: None if v is None else convert(v)), (lambda v: None if v is None else inner(v))

        def fits(value: Any, chk: Checker) -> bool:
            try:
                chk(value)
            except _Mismatch:
                return False
            return True

        def build(value: Any) -> Any:
            for convert, chk in pairs:  # the first member the value converts to and fits
                try:
                    out = convert(value)
                except (_Mismatch, CodecError, TypeError, ValueError, KeyError, AttributeError):
                    continue
                if fits(out, chk):
                    return out
            raise _Mismatch(expected, value)

        def check(value: Any) -> None:
            if not any(fits(value, chk) for _, chk in pairs):
                raise _Mismatch(expected, value)

        return build, check


def _each(values: Any, checks: Checker | list[Checker]) -> None:
    """Check every item of a sequence (one checker, or one per position), naming the index on a mismatch."""
    index = 0
    try:
        for index, item in enumerate(values):
            (checks if callable(checks) else checks[index])(item)
    except _Mismatch as exc:
        exc.path.append(f"[{index}]")
        raise


def _check_key(key: Any) -> None:
    if not isinstance(key, str):
        raise _Mismatch("str (a key)", key)


def _json_array(value: Any, expected: str) -> None:
    if not isinstance(value, list):  # anything else iterable (a string...) would be taken apart
        raise _Mismatch(f"a JSON array for {expected}", value)


def _literal(tp: Any, args: tuple[Any, ...]) -> Checker:
    expected = _name(tp)

    def check(value: Any) -> None:
        if not any(type(value) is type(a) and value == a for a in args):
            raise _Mismatch(expected, value)

    return check


def _from_json_base(tp: type) -> Converter:
    """A subclass of str, int or float is built from its base's JSON value; other classes are taken as they are."""
    base = next((b for b in (str, int, float) if issubclass(tp, b)), None)
    if base is None:
        return _identity
    return lambda v: tp(v) if isinstance(v, base) and not isinstance(v, bool) else v  # else: refused by the check


def _to_float(value: Any) -> Any:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _to_timedelta(value: Any) -> Any:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _Mismatch("seconds (a JSON number) for timedelta", value)
    return timedelta(seconds=value)


def _to_bytes(value: Any) -> Any:
    if not isinstance(value, str):
        raise _Mismatch("a JSON string for bytes", value)
    return value.encode()


_BUILDER = _Builder()


_DECODER = json.JSONDecoder()  # what json.loads uses for text


class JsonCodec(Generic[T]):
    """UTF-8 JSON for a dataclass (or any JSON-native type), decoded back to ``cls``.

    Encoding checks the object against ``cls`` first (its class, and each field's value
    against its type hint, recursively): `ObjectTypeError` names the field path and the
    value's type. Decoding refuses JSON that does not fit ``cls`` with `CodecError`; a
    missing field that has a default takes it (objects stored before the field was added),
    and the data-deletion placeholder (`DELETED_OBJECT`) reads as the default object.
    """

    def __init__(self, cls: type[T]) -> None:
        self._cls = cls
        self._root = _name(cls)
        self._convert, self._check = _BUILDER.pair(cls)
        self._deletable = dataclasses.is_dataclass(cls)
        self._encoder = json.JSONEncoder(default=_default, separators=(",", ":"), allow_nan=False)

    def encode(self, obj: T) -> bytes:
        """JSON bytes of ``obj``: `ObjectTypeError` if it does not fit ``cls``, `CodecError` if JSON cannot hold it."""
        try:
            self._check(obj)
        except _Mismatch as exc:
            raise _type_error(self._cls, exc.where(self._root), exc) from None
        try:
            return self._encoder.encode(obj).encode()
        except (TypeError, ValueError) as exc:
            msg = f"cannot encode {type(obj).__name__} as JSON: {exc}"
            raise CodecError(msg) from exc

    def decode(self, data: bytes) -> T:
        """The object for JSON ``data``; `CodecError` when the bytes do not fit ``cls``."""
        if data == DELETED_OBJECT and self._deletable:
            data = b"{}"  # every field at its default (a field without one is still refused below)
        try:
            # UTF-8 for sure (no BOM, no NUL in the first two bytes): json.loads's own detection skipped.
            if data[:1] == b"{" and len(data) > 1 and data[1]:
                value: T = self._convert(_DECODER.decode(data.decode("utf-8", "surrogatepass")))
            else:
                value = self._convert(json.loads(data))
            self._check(value)
        except _Mismatch as exc:
            msg = f"cannot decode {self._root} from JSON: {_mismatch(exc.where(self._root), exc)}"
            raise CodecError(msg, path=exc.where(self._root)) from None
        except CodecError as exc:
            msg = f"cannot decode {self._root} from JSON: {exc}"
            raise CodecError(msg) from exc
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            msg = f"cannot decode {self._root} from JSON: {exc}"
            raise CodecError(msg) from exc
        return value


def _mismatch(path: str, exc: _Mismatch) -> str:
    got = type(exc.value).__name__
    return f"{path} must be {exc.expected}, got {got}" if exc.path else f"expected {exc.expected}, got {got}"


def _type_error(cls: Any, path: str, exc: _Mismatch) -> ObjectTypeError:
    msg = f"cannot encode {_name(cls)}: {_mismatch(path, exc)} (the workflow's objects are {_name(cls)})"
    return ObjectTypeError(msg, object_type=cls, path=path, expected=exc.expected, value_type=type(exc.value).__name__)


def check_size(data: bytes, limit: int | None, what: str) -> None:
    """Raise `ObjectTooLarge` when ``data`` is over ``limit`` bytes (``None``: no limit)."""
    if limit is not None and len(data) > limit:
        msg = f"{what} is {len(data):,} bytes, over the workflow's max_object_bytes of {limit:,}"
        raise ObjectTooLarge(msg, size=len(data), limit=limit)


class CheckedCodec(Generic[T]):
    """A workflow's codec: ``inner`` with the declared type checked and the encoded size limited.

    A user's codec gets the ``isinstance`` check of ``cls`` (the JSON codec checks every
    field itself); the bytes are held to ``max_bytes`` (``None``: no limit). Both raise
    before anything is stored, so every write path (trigger, steps, callbacks, timeouts,
    custom delete) gets them.
    """

    def __init__(self, inner: Codec[T], cls: type[T], max_bytes: int | None = MAX_OBJECT_BYTES) -> None:
        self.inner = inner
        self.max_bytes = max_bytes
        self._cls = cls
        origin = typing.get_origin(cls) or cls  # list[int] is checked as a list
        self._kind: type | None = origin if isinstance(origin, type) and origin is not Any else None
        self._what = f"the encoded {_name(cls)}"

    def encode(self, obj: T) -> bytes:
        """``inner``'s bytes for ``obj``; `ObjectTypeError` or `ObjectTooLarge` instead of bad ones."""
        if self._kind is not None and not isinstance(obj, self._kind):
            raise _type_error(self._cls, _name(self._cls), _Mismatch(_name(self._cls), obj))
        data = self.inner.encode(obj)
        check_size(data, self.max_bytes, self._what)
        return data

    def decode(self, data: bytes) -> T:
        """``inner``'s object for ``data``."""
        return self.inner.decode(data)


def make_codec(
    cls: type[T],
    codec: Codec[T] | tuple[Callable[[T], bytes], Callable[[bytes], T]] | None,
    *,
    max_bytes: int | None = MAX_OBJECT_BYTES,
) -> CheckedCodec[T]:
    """The codec a workflow uses: the user's (an object or an encode/decode pair) or JSON, checked (`CheckedCodec`).

    JSON is the model's own for a pydantic model or a msgspec Struct (`actorflow.models`),
    actorflow's for a dataclass or any other type.
    """
    inner: Codec[T]
    if codec is None:
        inner = model_codec(cls) or JsonCodec(cls)  # a pydantic model's or msgspec Struct's own JSON
    elif isinstance(codec, tuple):
        encode, decode = codec
        inner = FunctionCodec(encode, decode)
    else:
        inner = codec
    return CheckedCodec(inner, cls, max_bytes)
