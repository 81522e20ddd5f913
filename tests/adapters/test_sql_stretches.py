"""`stretches`: how the SQL adapters split a batch into what one statement stores."""

from __future__ import annotations

from actorflow.adapters._sql.stretches import stretches
from actorflow.record import Record
from actorflow.runstate import RunState
from actorflow.testing.adaptertest._records import dummy_record, next_version


def _plain(record: Record) -> bool:
    return record.meta.version > 1 and record.run_state is not RunState.DATA_DELETED


def test_empty() -> None:
    assert stretches([], _plain) == []


def test_consecutive_plain_records_make_one_stretch_in_order() -> None:
    a, b, c = (next_version(dummy_record()) for _ in range(3))
    assert stretches([a, b, c], _plain) == [[a, b, c]]


def test_a_lone_plain_record_is_a_stretch_of_one() -> None:
    a = next_version(dummy_record())
    assert stretches([a], _plain) == [[a]]


def test_other_records_stand_alone_and_split_stretches() -> None:
    new, other_new = dummy_record(), dummy_record()
    a, b = next_version(dummy_record()), next_version(dummy_record())
    deleted = next_version(dummy_record(), run_state=RunState.DATA_DELETED)
    c = next_version(dummy_record())
    steps = stretches([new, a, b, deleted, other_new, c], _plain)
    assert steps == [new, [a, b], deleted, other_new, [c]]


def test_a_run_coming_again_starts_a_new_stretch() -> None:
    first = dummy_record()
    v2 = next_version(first)
    v3 = next_version(v2)
    other = next_version(dummy_record())
    steps = stretches([v2, other, v3], _plain)
    assert steps == [[v2, other], [v3]]


def test_version_1_then_2_of_a_run_keep_their_order() -> None:
    first = dummy_record()
    v2 = next_version(first)
    assert stretches([first, v2], _plain) == [first, [v2]]


def test_nothing_plain_keeps_every_record_alone_in_order() -> None:
    records = [next_version(dummy_record()) for _ in range(3)]
    assert stretches(records, lambda _: False) == records
