"""The engine's middle on its own: the one write path, the one failure rule, the host binding.

Most of the engine is proven end to end by the feature suite; these cases pin the paths
that suite meets only through the shipped adapters: a record store with no optional
capability at all (no group commit, no durable error counts), and the binding rules.
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from actorflow.capabilities import BatchStore, ErrorCounter
from actorflow.engine import ErrorCounts, Failed, error_key, reached_limit
from actorflow.engine.actions import trigger
from actorflow.metrics import metrics_for
from tests.model import Item, Stage, two_steps


class BaselineStore:
    """A record store with the baseline contract only: no capability for the engine to use."""

    def __init__(self) -> None:
        self._inner = MemoryRecordStore()
        self.stored: list[af.Record] = []

    def store(self, record: af.Record) -> None:
        self._inner.store(record)
        self.stored.append(record)

    def lookup(self, run_id: str) -> af.Record:
        return self._inner.lookup(run_id)

    def latest(self, workflow_name: str, foreign_id: str) -> af.Record:
        return self._inner.latest(workflow_name, foreign_id)

    def list(self, workflow_name: str, **kwargs: Any) -> list[af.Record]:
        return self._inner.list(workflow_name, **kwargs)

    def list_outbox_events(self, workflow_name: str, limit: int) -> list[Any]:
        return self._inner.list_outbox_events(workflow_name, limit)

    def delete_outbox_event(self, id: str) -> None:  # noqa: A002 - the contract's name
        self._inner.delete_outbox_event(id)


def _workflow(store: Any = None, **build: Any) -> af.Workflow[Item, Stage]:
    return two_steps("engine").build(
        MemoryEventStreamer(), store or MemoryRecordStore(), MemoryRoleScheduler(), **build
    )


def test_a_store_without_capabilities_is_written_one_record_at_a_time_and_counts_stay_in_memory():
    """No BatchStore: each write is a store(); no ErrorCounter: the engine counts in memory and forgets on commit."""
    store = BaselineStore()
    assert not isinstance(store, BatchStore) and not isinstance(store, ErrorCounter)
    wf = _workflow(store)
    engine = wf.engine
    counts = engine.error_counter
    assert isinstance(counts, ErrorCounts)
    run_id = wf.trigger("a", Item("a"))
    record = store.lookup(run_id)
    assert reached_limit(counts, "p", record, 3) is False
    assert counts.add_error(error_key("p", record), run_id) == 2

    first = engine.transitions.next(record, run_state=af.RunState.RUNNING)
    second = engine.transitions.next(first.record, run_state=af.RunState.RUNNING)
    stale = engine.transitions.next(record, run_state=af.RunState.PAUSED)  # over version 1 again
    results = engine.writer.commit([first, stale, second])
    assert [type(r).__name__ if r else None for r in results] == [None, "VersionConflict", None]
    assert [r.meta.version for r in store.stored] == [1, 2, 3]  # the refusal undid nothing
    assert counts.add_error(error_key("p", record), run_id) == 1  # the run moved on: its counts were forgotten


def test_the_failure_rule_counts_per_visit_and_pauses_at_the_limit():
    """reached_limit counts (process, version); a limit of 0 never pauses and counts nothing."""
    wf = _workflow()
    record = wf.record_store.lookup(wf.trigger("b", Item("b")))
    counts = ErrorCounts()
    assert [reached_limit(counts, "step", record, 2) for _ in range(2)] == [False, True]
    assert reached_limit(counts, "step", record, 0) is False
    assert counts.add_error(error_key("step", record), record.run_id) == 3  # the limit 0 call counted nothing
    moved = wf.engine.transitions.next(record, run_state=af.RunState.RUNNING).record
    assert reached_limit(counts, "step", moved, 2) is False  # another visit counts from zero


def test_fail_returns_the_automatic_pause_at_the_limit():
    """Engine.fail logs and applies the rule: None (retry) below the limit, the pause write at it."""
    wf = _workflow()
    engine = wf.engine
    record = wf.record_store.lookup(wf.trigger("c", Item("c")))
    result = engine.apply(record, lambda run: 1 / 0, (int(Stage.FIRST),))
    assert isinstance(result, Failed)
    assert engine.fail("step", record, result.error, 2) is None
    pause = engine.fail("step", record, result.error, 2)
    assert pause is not None
    assert (pause.record.run_state, pause.record.meta.version) == (af.RunState.PAUSED, 2)
    assert pause.record.meta.run_state_reason == "max error retry threshold hit - automatically paused"


def test_apply_turns_a_status_outside_the_destinations_into_a_failure_and_stores_nothing():
    """A user function's bad result is a Failed, never a write."""
    wf = _workflow()
    record = wf.record_store.lookup(wf.trigger("d", Item("d")))
    result = wf.engine.apply(record, lambda run: Stage.DONE, (int(Stage.FIRST),))
    assert isinstance(result, Failed)
    assert isinstance(result.error, af.StepError)
    assert wf.record_store.lookup(record.run_id).meta.version == 1


def test_an_engine_is_hosted_by_one_host_at_a_time():
    """bind() refuses a second host; unbind() by another host changes nothing."""
    wf = _workflow()
    engine = wf.engine
    metrics = metrics_for(CollectorRegistry())
    first, second = af.Supervisor([wf], registry=CollectorRegistry()), object()
    engine.bind(first, metrics)
    with pytest.raises(af.ActorflowError, match="already hosted"):
        engine.bind(second, metrics)  # type: ignore[arg-type]
    engine.unbind(second)  # type: ignore[arg-type]
    assert engine.host is first
    assert engine.metrics is metrics
    engine.unbind(first)
    assert engine.host is None


def test_the_schedule_process_triggers_through_the_same_action_as_the_facade():
    """actions.trigger is what Workflow.trigger and the schedule process call: one code path."""
    wf = _workflow()
    run_id = trigger(wf.engine, "e", Item("e"))
    assert wf.record_store.lookup(run_id).meta.version == 1
    with pytest.raises(af.WorkflowInProgress):
        wf.trigger("e", Item("e"))
