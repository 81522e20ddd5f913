"""The `ConnectorConstructor` conformance suite: the original's run through, then the consumer."""

# ruff: noqa: S101, PLR2004 - a pytest suite asserts

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from actorflow.event import ConnectorEvent, connector_key, shard_of
from actorflow.protocols import ConnectorConstructor, ConnectorConsumer, ReceiverOptions
from actorflow.testing.adaptertest._workflows import CONNECTOR_EMAIL, SyncStatus, User, connector_workflow
from actorflow.testing.helpers import require

__all__ = ["ConnectorFactory", "ConnectorSuite"]

ConnectorFactory = Callable[[Sequence[ConnectorEvent]], ConnectorConstructor]
"""Makes a connector constructor whose stream holds ``events``, in that order."""

_SEED = [
    ConnectorEvent(id="1", foreign_id="SKDJF-2304893-SDFKJBSD"),
    ConnectorEvent(id="2", foreign_id="LSKDF-23OU5QL-23K45B23"),
]


def _events(count: int) -> list[ConnectorEvent]:
    return [ConnectorEvent(id=str(i + 1), foreign_id=f"foreign-{i}") for i in range(count)]


def _keys(events: Sequence[ConnectorEvent]) -> list[tuple[str, str]]:
    """What identifies a connector event across adapters: its id and foreign id."""
    return [(e.id, e.foreign_id) for e in events]


def _collect(consumer: ConnectorConsumer, count: int, timeout: float = 5.0) -> list[ConnectorEvent]:
    out: list[ConnectorEvent] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        out.extend(consumer.receive(count - len(out), remaining))
    return out


class ConnectorSuite:
    """Conformance tests every `actorflow.protocols.ConnectorConstructor` must pass.

    Subclass it under a ``Test...`` name and give it a ``make_connector`` fixture: a
    callable taking a list of `ConnectorEvent` and returning a constructor whose external
    stream holds those events in order (a fresh stream each call, no cursors). It may be
    a generator fixture that cleans up after the test::

        import pytest
        from actorflow.adapters.memory import MemoryConnector
        from actorflow.testing.adaptertest import ConnectorSuite

        class TestMemoryConnector(ConnectorSuite):
            @pytest.fixture
            def make_connector(self):
                return MemoryConnector

    The first case ports ``adaptertest.RunConnectorTest``: connector ``tester`` of workflow
    ``connector-test`` triggers a run per event. The others test the consumer directly:
    order, named cursors, cumulative acks, the receive timeout and shard options.
    """

    @pytest.fixture
    def make_connector(self) -> ConnectorFactory:
        """Override this: return a callable ``events -> ConnectorConstructor``."""
        pytest.fail(
            "ConnectorSuite needs a make_connector fixture: define "
            "`@pytest.fixture def make_connector(self): return MyConnector` in your test class"
        )

    @pytest.fixture
    def consumers(self) -> Iterator[list[ConnectorConsumer]]:
        """Consumers a case makes; each is closed when the case ends."""
        made: list[ConnectorConsumer] = []
        yield made
        for consumer in made:
            consumer.close()

    def test_connector_triggers_a_run_per_event(self, make_connector: ConnectorFactory) -> None:
        """Each external event starts a run that reaches EmailSet (original case)."""
        wf = connector_workflow(make_connector(list(_SEED)))
        wf.run()
        try:
            for event in _SEED:
                expected = User(uid=event.foreign_id, email=CONNECTOR_EMAIL)
                require(wf, event.foreign_id, SyncStatus.EMAIL_SET, expected)
        finally:
            wf.stop()

    def test_consumer_delivers_the_events_in_order(
        self, make_connector: ConnectorFactory, consumers: list[ConnectorConsumer]
    ) -> None:
        """A new consumer receives every event of the stream, in order."""
        events = _events(5)
        consumer = make_connector(events).make("in-order", ReceiverOptions())
        consumers.append(consumer)
        got = _collect(consumer, 5)
        assert _keys(got) == _keys(events)
        assert all(isinstance(e, ConnectorEvent) for e in got)

    def test_consumer_resumes_after_the_last_ack(
        self, make_connector: ConnectorFactory, consumers: list[ConnectorConsumer]
    ) -> None:
        """A consumer made again under the same name starts after its last (cumulative) ack."""
        events = _events(5)
        constructor = make_connector(events)
        first = constructor.make("resumer", ReceiverOptions())
        got = _collect(first, 5)
        first.ack(got[1])
        first.close()

        second = constructor.make("resumer", ReceiverOptions())
        consumers.append(second)
        assert _keys(_collect(second, 3)) == _keys(events[2:])

    def test_consumer_names_keep_their_own_cursors(
        self, make_connector: ConnectorFactory, consumers: list[ConnectorConsumer]
    ) -> None:
        """An ack under one name does not move another name's cursor."""
        events = _events(3)
        constructor = make_connector(events)
        first = constructor.make("first", ReceiverOptions())
        consumers.append(first)
        got = _collect(first, 3)
        first.ack(got[-1])

        second = constructor.make("second", ReceiverOptions())
        consumers.append(second)
        assert _keys(_collect(second, 3)) == _keys(events)

    def test_receive_returns_nothing_after_the_timeout(
        self, make_connector: ConnectorFactory, consumers: list[ConnectorConsumer]
    ) -> None:
        """Once the stream is read, receive() returns [] within its timeout (plus slack)."""
        consumer = make_connector(_events(2)).make("drained", ReceiverOptions())
        consumers.append(consumer)
        assert len(_collect(consumer, 2)) == 2
        started = time.monotonic()
        assert list(consumer.receive(10, 0.2)) == []
        assert time.monotonic() - started < 2.2

    def test_sharded_consumers_together_receive_every_event(
        self, make_connector: ConnectorFactory, consumers: list[ConnectorConsumer]
    ) -> None:
        """Shard consumers cover the stream; one that filters keeps shard_of(foreign id) only."""
        events = _events(20)
        constructor = make_connector(events)
        n = 2
        everything = set(_keys(events))
        union: set[tuple[str, str]] = set()
        for shard in range(n):
            consumer = constructor.make(f"tester-consumer-{shard}-of-{n}", ReceiverOptions(shard=shard, shard_count=n))
            consumers.append(consumer)
            share = {
                key for key, e in zip(_keys(events), events, strict=True) if shard_of(connector_key(e), n) == shard
            }
            got: list[ConnectorEvent] = []
            deadline = time.monotonic() + 5.0
            while not share <= set(_keys(got)) and time.monotonic() < deadline:
                got += consumer.receive(100, max(0.0, deadline - time.monotonic()))
            while extra := consumer.receive(100, 0.2):
                got += extra
            keys = _keys(got)
            assert len(keys) == len(set(keys)), f"shard {shard} received an event twice"
            assert share <= set(keys), f"shard {shard} missed events of its own share"
            if set(keys) != everything:
                strays = [e.id for e in got if shard_of(connector_key(e), n) != shard]
                assert not strays, f"shard {shard} of a filtering connector got other shards' events: {strays}"
            union |= set(keys)
        assert union == everything
