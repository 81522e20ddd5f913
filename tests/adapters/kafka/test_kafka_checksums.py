"""kafka-python checksums every batch: the adapter says when it does so in pure Python."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import kafka.record.util
import pytest

from actorflow.adapters.kafka import KafkaEventStreamer
from actorflow.adapters.kafka._client import warn_if_slow_checksums


@pytest.fixture
def once_again() -> Iterator[None]:
    """The warning is said once a process: forget that it was."""
    warn_if_slow_checksums.cache_clear()
    yield
    warn_if_slow_checksums.cache_clear()


def test_the_kafka_extra_brings_the_native_checksum():
    """``actorflow[kafka]`` installs kafka-python's crc32c extra: no warning, native code."""
    assert kafka.record.util.crc32c_c is not None
    warn_if_slow_checksums.cache_clear()
    assert warn_if_slow_checksums() is False


def test_a_streamer_warns_once_when_checksums_are_computed_in_pure_python(once_again, monkeypatch, caplog):
    monkeypatch.setattr(kafka.record.util, "crc32c_c", None)
    with caplog.at_level(logging.WARNING, logger="actorflow.kafka"):
        first = KafkaEventStreamer("127.0.0.1:9", "checksums-")  # connects nothing
        second = KafkaEventStreamer("127.0.0.1:9", "checksums-")
    first.close()
    second.close()
    said = [r.getMessage() for r in caplog.records if "CRC-32C" in r.getMessage()]
    assert len(said) == 1, said
    assert "pip install 'actorflow[kafka]'" in said[0]
