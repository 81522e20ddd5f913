"""Fixtures of the Kafka adapter's tests: streamers and receivers that are always closed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def make(kafka_broker: str, kafka_prefix: str) -> Iterator[Any]:
    """``make(**kwargs)``: a KafkaEventStreamer on the test's prefix; every one is closed after."""
    from actorflow.adapters.kafka import KafkaEventStreamer

    made: list[KafkaEventStreamer] = []

    def _make(**kwargs: Any) -> KafkaEventStreamer:
        streamer = KafkaEventStreamer(kafka_broker, kafka_prefix, **kwargs)
        made.append(streamer)
        return streamer

    yield _make
    for streamer in made:
        streamer.close()


@pytest.fixture
def receivers() -> Iterator[list[Any]]:
    """Receivers a test opens; closed after it (kafka-python consumers must always be closed)."""
    opened: list[Any] = []
    yield opened
    for receiver in opened:
        receiver.close()
