"""The memory adapters pass every conformance suite, unchanged."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from actorflow.adapters.memory import (
    MemoryConnector,
    MemoryEventStreamer,
    MemoryRecordStore,
    MemoryRoleScheduler,
    MemoryTimeoutStore,
)
from actorflow.testing.adaptertest import (
    ConnectorSuite,
    EventStreamerSuite,
    ExpiringLeaseSuite,
    RecordStoreSuite,
    RoleSchedulerSuite,
    TimeoutStoreSuite,
)


class TestMemoryRecordStore(RecordStoreSuite):
    @pytest.fixture
    def make_record_store(self):
        return MemoryRecordStore


class TestMemoryTimeoutStore(TimeoutStoreSuite):
    @pytest.fixture
    def make_timeout_store(self):
        return MemoryTimeoutStore


def _shared(make: Callable[[], MemoryRoleScheduler]) -> Callable[[int], Sequence[MemoryRoleScheduler]]:
    """n "nodes" of one process share one scheduler: the same instance n times."""

    def make_many(n: int) -> Sequence[MemoryRoleScheduler]:
        shared = make()
        return [shared] * n

    return make_many


class TestMemoryRoleScheduler(RoleSchedulerSuite):
    @pytest.fixture
    def make_role_scheduler(self):
        return _shared(MemoryRoleScheduler)


class TestMemoryRoleSchedulerWithTtl(ExpiringLeaseSuite):
    """Leases that run out (the failover mode): the ttl cases run here."""

    @pytest.fixture
    def make_role_scheduler(self):
        return _shared(lambda: MemoryRoleScheduler(ttl=0.3))


class TestMemoryEventStreamer(EventStreamerSuite):
    @pytest.fixture
    def make_event_streamer(self):
        return MemoryEventStreamer


class TestMemoryConnector(ConnectorSuite):
    @pytest.fixture
    def make_connector(self):
        return MemoryConnector
