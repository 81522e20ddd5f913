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


def test_work_is_spread_over_every_shard(start, linear, step_style):
    """With many runs, every one of the four shards of a step gets some of them."""
    calls = Calls()
    wf = start(linear(calls, options=af.Options(parallel_count=4)))
    run_ids = {f"o-{i}": wf.trigger(f"o-{i}") for i in range(RUNS)}
    for foreign_id, run_id in run_ids.items():
        wf.await_status(foreign_id, run_id, Status.DONE, timeout=10)
    if step_style == "sync":  # each shard's steps run on its own thread
        assert len(calls.threads("charge")) == 4
    else:  # async steps all run on the engine's loop, whichever shard consumed their event
        shards = {key for key in wf.states() if key.startswith("started-consumer-")}
        assert len(shards) == 4
