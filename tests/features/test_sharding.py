"""Sharding: parallel_count consumers per step, each run handled by one of them, each step once."""

from __future__ import annotations

import actorflow as af
from tests.model import Calls, Status

RUNS = 200


def test_parallel_count_starts_one_consumer_per_shard(start, linear):
    """parallel_count=4 gives each step four consumers named <status>-consumer-<i>-of-4."""
    wf = start(linear(options=af.Options(parallel_count=4)))
    consumers = {name for name in wf.states() if "-consumer-" in name and "-of-" in name}
    assert consumers == {
        f"{status}-consumer-{i}-of-4" for status in ("started", "charged", "shipped") for i in range(1, 5)
    }


def test_every_run_completes_and_each_step_runs_once_per_run(start, linear):
    """Over four shards, 200 runs all complete, and no step is called twice for a run."""
    calls = Calls()
    wf = start(linear(calls, options=af.Options(parallel_count=4)))
    run_ids = {f"o-{i}": wf.trigger(f"o-{i}") for i in range(RUNS)}
    for foreign_id, run_id in run_ids.items():
        assert wf.await_status(foreign_id, run_id, Status.DONE, timeout=10).meta.version == 4
    for label in ("charge", "ship", "finish"):
        assert calls.per_run(label) == dict.fromkeys(run_ids.values(), 1)


def test_work_is_spread_over_every_shard(start, linear):
    """With many runs, every one of the four shards of a step gets some of them.

    A shard's consumer handles only the runs of its shard (`af.shard_of`), so the runs the
    step was called for cover every shard only if every shard's consumer worked. (Not the
    threads the steps ran on: a slow step goes to its consumer's worker threads, an async
    one to the engine's loop.)
    """
    calls = Calls()
    wf = start(linear(calls, options=af.Options(parallel_count=4)))
    run_ids = {f"o-{i}": wf.trigger(f"o-{i}") for i in range(RUNS)}
    for foreign_id, run_id in run_ids.items():
        wf.await_status(foreign_id, run_id, Status.DONE, timeout=10)
    charged = {run_id for run_id in run_ids.values() if calls.count("charge", run_id)}
    assert charged == set(run_ids.values())
    assert {af.shard_of(run_id, 4) for run_id in charged} == {0, 1, 2, 3}
