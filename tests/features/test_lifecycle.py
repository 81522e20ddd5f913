"""Running and stopping: run is idempotent, stop is safe, and a stopped workflow runs again."""

from __future__ import annotations

import actorflow as af
from tests.model import Status


def test_run_is_idempotent(start, linear):
    """A second run() on a running workflow changes nothing."""
    wf = start(linear())
    before = set(wf.states())
    wf.run()
    assert set(wf.states()) == before
    run_id = wf.trigger("o-1")
    wf.await_status("o-1", run_id, Status.DONE, timeout=5)


def test_stop_is_safe_when_not_running(build, linear):
    """stop() on a workflow that never ran does nothing."""
    wf = build(linear())
    wf.stop()
    assert wf.states() == {}


def test_stop_stops_every_process(start, linear):
    """After stop() the workflow reports no process."""
    wf = start(linear())
    wf.stop()
    assert wf.states() == {}


def test_a_stopped_workflow_can_run_again(start, linear):
    """Runs triggered while stopped are picked up when the workflow runs again."""
    wf = start(linear())
    first = wf.trigger("o-1")
    wf.await_status("o-1", first, Status.DONE, timeout=5)
    wf.stop()
    second = wf.trigger("o-2")
    assert wf.record_store.lookup(second).run_state is af.RunState.INITIATED
    wf.run()
    wf.await_status("o-2", second, Status.DONE, timeout=5)
