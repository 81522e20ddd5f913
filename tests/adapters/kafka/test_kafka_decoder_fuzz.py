"""No message crashes a Kafka receiver: `_Receiver._event` turns any record into an Event (fuzzed, no broker).

Whatever a producer wrote (any key, value, headers and timestamp), the decoder returns
either a well-formed event or one whose ``malformed`` says why, which the consumer skips
(logged and counted). Hypothesis runs derandomized, without an example database, so CI
sees the same examples every time.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from typing import Any

import pytest

pytest.importorskip("kafka")

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from actorflow.adapters.kafka.streamer import _Receiver, event_position
from actorflow.clock import FakeClock
from actorflow.event import Event, Header

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
INT64_MAX = (1 << 63) - 1
FUZZ = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclasses.dataclass
class FakeRecord:
    """What the decoder reads of a kafka-python ConsumerRecord."""

    partition: int = 0
    offset: int = 0
    key: Any = b"run-1"
    value: Any = b"1"
    headers: Any = dataclasses.field(default_factory=lambda: [("topic", b"orders-1")])
    timestamp: Any = 1_700_000_000_000


def decode(record: FakeRecord) -> Event:
    receiver = _Receiver(reader=None, shard_filter=None, clock=FakeClock(NOW))  # type: ignore[arg-type]
    return receiver._event(record)  # noqa: SLF001 - the decoder under test


def check(record: FakeRecord) -> Event:
    """Decode ``record`` and check the event is whole: malformed with a reason, or every field right."""
    event = decode(record)
    assert isinstance(event, Event)
    assert event_position(event.id) == (record.partition, record.offset)
    assert isinstance(event.created_at, datetime)
    assert event.created_at.tzinfo is not None
    assert isinstance(event.run_id, str)
    assert isinstance(event.type, int)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in event.headers.items())
    assert isinstance(event.malformed, str)
    assert not event.malformed.startswith("unreadable message"), "a hole the checks missed: " + event.malformed
    if not event.malformed:
        # Well-formed: exactly what luno/workflow writes.
        assert record.key
        assert event.run_id == record.key.decode()
        assert "\x00" not in event.run_id
        assert re.fullmatch(rb"-?[0-9]{1,19}", record.value)
        assert event.type == int(record.value)
        assert -(1 << 63) <= event.type <= INT64_MAX
        assert Header.TOPIC in event.headers
        for name in (Header.RUN_STATE, Header.RECORD_VERSION):
            if name in event.headers:
                assert re.fullmatch(r"[0-9]{1,19}", event.headers[name], re.ASCII)
                assert int(event.headers[name]) <= INT64_MAX
    return event


digits = st.text(alphabet="0123456789", min_size=1, max_size=30)
numberish = st.one_of(
    digits,
    digits.map(lambda d: "-" + d),
    digits.map(lambda d: " " + d + "\n"),
    digits.map(lambda d: "0" * 30 + d),
    st.integers(min_value=-(1 << 80), max_value=1 << 80).map(str),
    st.text(alphabet="0123456789+-_ ١٢٣٤٥٦٧٨٩٠𝟗", max_size=25),
    st.text(max_size=25),
)
raw_bytes = st.one_of(
    st.binary(max_size=60),
    numberish.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.just(b"9" * 5000),
)
header_value = st.one_of(st.none(), raw_bytes)
header_name = st.one_of(
    st.sampled_from(["topic", "run_state", "record_version", "workflow_name", "foreign_id", "run_id"]),
    st.text(max_size=12),
)
headers = st.one_of(
    st.none(),
    st.lists(st.tuples(header_name, header_value), max_size=6),
    # What a well-behaved producer writes, with hostile numbers in the numeric headers.
    st.tuples(header_value, header_value).map(
        lambda v: [("topic", b"orders-1"), ("run_state", v[0]), ("record_version", v[1])]
    ),
)
timestamps = st.one_of(st.none(), st.integers(min_value=-(1 << 70), max_value=1 << 70), st.just(-1))


@FUZZ
@given(
    partition=st.integers(min_value=0, max_value=(1 << 16) - 1),
    offset=st.integers(min_value=0, max_value=1 << 62),
    key=st.one_of(st.none(), raw_bytes, st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass"))),
    value=st.one_of(st.none(), raw_bytes),
    headers=headers,
    timestamp=timestamps,
)
def test_no_record_makes_the_decoder_raise(
    partition: int, offset: int, key: bytes | None, value: bytes | None, headers: Any, timestamp: int | None
) -> None:
    """Any bytes key and value, any headers (None values, non-UTF-8), any timestamp: an Event, never an exception."""
    check(FakeRecord(partition, offset, key, value, headers, timestamp))


@FUZZ
@given(value=numberish)
@example(value="9" * 5000)
@example(value="9" * 19)
@example(value=str(INT64_MAX + 1))
@example(value=str(-(1 << 63) - 1))
def test_a_status_decodes_only_when_it_is_a_64_bit_decimal(value: str) -> None:
    """The value is a status only as a signed 64-bit integer in ASCII decimal; anything else is malformed."""
    event = check(FakeRecord(value=value.encode("utf-8", "surrogatepass")))
    fits = re.fullmatch(r"-?[0-9]{1,19}", value, re.ASCII) is not None and -(1 << 63) <= int(value) <= INT64_MAX
    assert (event.malformed == "") is fits, (value[:50], event.malformed)
    if not fits:
        assert "is not a decimal status" in event.malformed


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"9" * 5000, "is not a decimal status"),  # issue 14: int() refuses 4,301+ digits
        (b"1" * 4301, "is not a decimal status"),
        (b"9" * 19, "is not a decimal status"),  # > 2**63 - 1
        (b"9" * 20, "is not a decimal status"),
        (b"9223372036854775808", "is not a decimal status"),  # 2**63
        (b"-9223372036854775809", "is not a decimal status"),  # -2**63 - 1
        (b"0" * 30 + b"1", "is not a decimal status"),  # leading zeros beyond 19 digits
        (b" 1", "is not a decimal status"),
        (b"1\n", "is not a decimal status"),
        (b"+1", "is not a decimal status"),
        (b"1_000", "is not a decimal status"),
        ("١٢".encode(), "is not a decimal status"),  # Arabic-Indic digits: int() reads them, Go does not
        (b"", "is not a decimal status"),
        (b"-", "is not a decimal status"),
        (b"\xff\xfe", "is not a decimal status"),
    ],
)
def test_regression_values_are_malformed(value: bytes, why: str) -> None:
    """The values of issue 14 and their neighbours: malformed with a short reason, never an exception."""
    event = check(FakeRecord(value=value))
    assert why in event.malformed
    assert len(event.malformed) < 200  # a 5,000-digit value is quoted cut short


@pytest.mark.parametrize(
    ("value", "status"),
    [
        (b"9223372036854775807", INT64_MAX),
        (b"-9223372036854775808", -(1 << 63)),
        (b"0", 0),
        (b"007", 7),
        (b"-1", -1),
        (b"123456789", 123456789),
    ],
)
def test_statuses_in_the_64_bit_range_decode(value: bytes, status: int) -> None:
    """The bounds themselves are statuses."""
    event = check(FakeRecord(value=value))
    assert (event.malformed, event.type) == ("", status)


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (FakeRecord(key=None), "no key (run id)"),
        (FakeRecord(key=b""), "no key (run id)"),
        (FakeRecord(key=b"\xff\xfe"), "the key (run id) is not UTF-8"),
        (FakeRecord(key=b"run\x00id"), "the key (run id) has a NUL"),
        (FakeRecord(headers=None), "missing header(s) topic"),
        (FakeRecord(headers=[("topic", None)]), ""),  # a null header value reads as ""
        (FakeRecord(headers=[("topic", b"\xff")]), "a header value is not UTF-8"),
        (FakeRecord(headers=[("topic",)]), "header 0 is not a (name, value) pair"),
        (FakeRecord(headers=[("topic", b"t"), ("run_state", b"9" * 5000)]), "header run_state"),
        (FakeRecord(headers=[("topic", b"t"), ("record_version", b"9" * 20)]), "header record_version"),
        (FakeRecord(headers=[("topic", b"t"), ("record_version", b"-1")]), "header record_version"),
        (FakeRecord(headers=[("topic", b"t"), ("record_version", "١٢".encode())]), "header record_version"),
        (FakeRecord(headers=[("topic", b"t"), ("run_state", None)]), "header run_state"),
        (FakeRecord(headers=[("topic", b"t"), ("run_state", b"2"), ("record_version", b"12")]), ""),
    ],
)
def test_regression_keys_and_headers(record: FakeRecord, why: str) -> None:
    """Keys and headers luno/workflow never writes are malformed, each with its reason."""
    event = check(record)
    if why:
        assert why in event.malformed
    else:
        assert event.malformed == ""


@pytest.mark.parametrize("timestamp", [None, -1, -(10**30), 10**30, 253402300800000, 2**63 - 1, True])
def test_a_timestamp_no_datetime_holds_reads_as_now(timestamp: Any) -> None:
    """A missing, negative or far-future timestamp leaves the event well-formed, created at the clock's now."""
    event = check(FakeRecord(timestamp=timestamp))
    assert event.malformed == ""
    if timestamp is not True:
        assert event.created_at == NOW


def test_the_last_timestamp_a_datetime_holds_is_read() -> None:
    """9999-12-31T23:59:59.999Z, the latest timestamp there is, is the event's time."""
    event = check(FakeRecord(timestamp=253402300799999))
    assert event.created_at.year == 9999
