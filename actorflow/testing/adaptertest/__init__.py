"""Conformance suites every adapter runs: one pytest import, one factory fixture.

Each suite is a plain class of pytest tests. Subclass it under a ``Test...`` name and give
it the factory fixture its docstring names; the same tests then run against your adapter,
exactly as they run against the memory, SQLite and PostgreSQL adapters::

    import pytest
    from actorflow.adapters.memory import MemoryRecordStore
    from actorflow.testing.adaptertest import RecordStoreSuite

    class TestMemoryRecordStore(RecordStoreSuite):
        @pytest.fixture
        def make_record_store(self):
            return MemoryRecordStore

=====================  =======================  ============================================
suite                  fixture                  the fixture returns
=====================  =======================  ============================================
`RecordStoreSuite`     ``make_record_store``    ``() -> RecordStore`` (fresh and empty)
`TimeoutStoreSuite`    ``make_timeout_store``   ``() -> TimeoutStore`` (fresh and empty)
`RoleSchedulerSuite`   ``make_role_scheduler``  ``(n) -> n RoleSchedulers`` (one backing)
`ExpiringLeaseSuite`   ``make_role_scheduler``  the same, for leases with a ttl
`FencedStoreSuite`     ``make_fenced_pair``     ``() -> (RecordStore, RoleScheduler)`` (one db)
`FencedAcksSuite`      ``make_fenced_streamer`` ``() -> (EventStreamer, RoleScheduler)`` (one db)
`FencedTimeoutsSuite`  ``make_fenced_timeouts`` ``() -> (TimeoutStore, RoleScheduler)`` (one db)
`MembershipSuite`      ``make_role_scheduler``  as `ExpiringLeaseSuite`, with `Membership`
`EventStreamerSuite`   ``make_event_streamer``  ``(clock=None) -> EventStreamer``
`ConnectorSuite`       ``make_connector``       ``(events) -> ConnectorConstructor``
`SharedDatabaseSuite`  ``make_shared_pair``     ``() -> (RecordStore, EventStreamer)`` (one db)
=====================  =======================  ============================================

A fixture may be a generator fixture: ``yield`` the factory, then clean up. The suites
port every case of luno/workflow's ``adapters/adaptertest`` and add the guarantees
actorflow makes beyond it. The core never imports this package; it needs pytest.
"""

import pytest

# The suites assert like tests; have pytest rewrite their asserts for readable failures.
# The submodules are named one by one: this package is already being imported here.
pytest.register_assert_rewrite(
    "actorflow.testing.adaptertest._records",
    "actorflow.testing.adaptertest._recordstore_guarantees",
    "actorflow.testing.adaptertest._recordstore_list",
    "actorflow.testing.adaptertest._workflows",
    "actorflow.testing.adaptertest.connector",
    "actorflow.testing.adaptertest.eventstreamer",
    "actorflow.testing.adaptertest.fencing",
    "actorflow.testing.adaptertest.membership",
    "actorflow.testing.adaptertest.recordstore",
    "actorflow.testing.adaptertest.rolescheduler",
    "actorflow.testing.adaptertest.shared",
    "actorflow.testing.adaptertest.timeoutstore",
)

from actorflow.testing.adaptertest.connector import ConnectorFactory, ConnectorSuite  # noqa: E402
from actorflow.testing.adaptertest.eventstreamer import EventStreamerFactory, EventStreamerSuite  # noqa: E402
from actorflow.testing.adaptertest.fencing import (  # noqa: E402
    FencedAcksSuite,
    FencedPairFactory,
    FencedStoreSuite,
    FencedStreamerFactory,
    FencedTimeoutsFactory,
    FencedTimeoutsSuite,
)
from actorflow.testing.adaptertest.membership import MembershipSuite  # noqa: E402
from actorflow.testing.adaptertest.recordstore import RecordStoreFactory, RecordStoreSuite  # noqa: E402
from actorflow.testing.adaptertest.rolescheduler import (  # noqa: E402
    ExpiringLeaseSuite,
    RoleSchedulerFactory,
    RoleSchedulerSuite,
    await_role,
)
from actorflow.testing.adaptertest.shared import SharedDatabaseFactory, SharedDatabaseSuite  # noqa: E402
from actorflow.testing.adaptertest.timeoutstore import TimeoutStoreFactory, TimeoutStoreSuite  # noqa: E402

__all__ = [
    "ConnectorFactory",
    "ConnectorSuite",
    "EventStreamerFactory",
    "EventStreamerSuite",
    "ExpiringLeaseSuite",
    "FencedAcksSuite",
    "FencedPairFactory",
    "FencedStoreSuite",
    "FencedStreamerFactory",
    "FencedTimeoutsFactory",
    "FencedTimeoutsSuite",
    "MembershipSuite",
    "RecordStoreFactory",
    "RecordStoreSuite",
    "RoleSchedulerFactory",
    "RoleSchedulerSuite",
    "SharedDatabaseFactory",
    "SharedDatabaseSuite",
    "TimeoutStoreFactory",
    "TimeoutStoreSuite",
    "await_role",
]
