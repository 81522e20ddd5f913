"""The engine's waiters (`WatchRegistry`): what a waiter is handed around a data deletion."""

from __future__ import annotations

import actorflow as af
from actorflow.engine import WatchRegistry
from actorflow.testing.adaptertest._records import STATUS_END, dummy_record, next_version

DELETED = b'{"result":"deleted"}'


def test_a_deletion_replaces_the_object_of_the_versions_a_waiter_has_not_taken():
    """Versions pushed before a Data Deleted one, and not yet taken, come out with its object.

    As in the store: an await that wakes after the deletion never hands out the old object.
    The rest of each version stays, and a waiter of another run is left alone.
    """
    registry = WatchRegistry()
    done = next_version(dummy_record(), status=STATUS_END, run_state=af.RunState.COMPLETED)
    requested = next_version(done, run_state=af.RunState.REQUESTED_DATA_DELETED)
    deleted = next_version(requested, run_state=af.RunState.DATA_DELETED, obj=DELETED)
    other = dummy_record(foreign_id="other")
    with registry.watch(done.run_id) as waiter, registry.watch(other.run_id) as bystander:
        for record in (done, requested, other, deleted):
            registry.publish(record)
        taken = waiter.take(0)
        assert bystander.take(0) == [other]
    assert [r.object for r in taken] == [DELETED] * 3
    assert [(r.meta, r.run_state, r.status, r.updated_at) for r in taken] == [
        (r.meta, r.run_state, r.status, r.updated_at) for r in (done, requested, deleted)
    ]
