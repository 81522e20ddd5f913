"""The handoff (engine/handoff.py) under test: counting what consumers take from their writer, and the scenarios each store that hands off runs."""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import actorflow as af
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.event import topic
from actorflow.processes.consumer import EventConsumer
from tests.model import Item, Stage, three_steps
from tests.waiting import eventually


def count_handed(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """From now on (for the test), how many handed events the consumers of each topic took in."""
    taken = collections.Counter[str]()
    lock = threading.Lock()
    take = EventConsumer._take_handed  # noqa: SLF001 - counting what the consumer takes from the writer

    def counting(self: EventConsumer, *args: Any) -> Any:
        events = take(self, *args)
        with lock:
            taken[self.topic] += len(events)
        return events

    monkeypatch.setattr(EventConsumer, "_take_handed", counting)
    return taken


Adapters = Callable[[], tuple[Any, Any]]  # a new (record store, event streamer) on the test's database


@contextlib.contextmanager
def node_and_client(adapters: Adapters, name: str) -> Iterator[tuple[Any, Any]]:
    """A node's `three_steps` workflow and a client engine of it, each on adapters of its own (closed after).

    The client runs no processes: its triggers are another process's writes to the node.
    """
    store, streamer = adapters()
    client_store, client_streamer = adapters()
    try:
        yield (
            three_steps(name).build(streamer, store, MemoryRoleScheduler()),
            three_steps(name).build(client_streamer, client_store, MemoryRoleScheduler()),
        )
    finally:
        for closing in (client_streamer, client_store, streamer, store):
            closing.close()


def stopping_node_passes_its_twins(
    adapters: Adapters, at_the_end: Callable[[str, tuple[Stage, ...]], bool], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handed event's cursor moves when its copy in the log is read: the role's next holder does not redo it.

    The step returns ``skip()`` (a second run would write nothing, so no version check
    would stop it) and polls rarely: a copy left unread is read by the stop, or by no one
    before the next holder. ``at_the_end(workflow, statuses)``: every cursor of those
    statuses' topics at the end of the log.
    """
    calls = collections.Counter[str]()
    taken = count_handed(monkeypatch)

    def skip(run: Any) -> Any:
        calls[run.foreign_id] += 1
        return run.skip()

    def build() -> tuple[Any, Any, Any]:
        b = af.Builder(name, Item, Stage)
        b.add_step(Stage.STARTED, lambda run: Stage.FIRST, Stage.FIRST)
        # A long poll: the log's copy is not read before the stop (only by it).
        b.add_step(Stage.FIRST, skip, Stage.DONE).with_options(polling_frequency=30.0)
        store, streamer = adapters()
        return b.build(streamer, store, MemoryRoleScheduler()), store, streamer

    first = topic(name, Stage.FIRST)
    wf, store, streamer = build()
    try:
        with af.Supervisor([wf]):
            eventually(lambda: wf.engine.handoff.subscribers(first), what="the step's consumer up")
            for i in range(20):  # until a hop to FIRST is handed over (its consumer idle at the commit)
                wf.trigger(f"s-{i}", Item(f"s-{i}"))
                eventually(lambda i=i: calls[f"s-{i}"] >= 1, what="the step run")
                if taken[first]:
                    break
            assert taken[first], "no hop was handed over"
    finally:
        streamer.close()
        store.close()
    ran = dict(calls)
    again, store, streamer = build()  # the role's next holder
    try:
        with af.Supervisor([again]):
            eventually(lambda: at_the_end(name, (Stage.FIRST,)), what="the log read to its end")
            assert dict(calls) == ran == dict.fromkeys(ran, 1)
    finally:
        streamer.close()
        store.close()


def single_runs_take_their_own_events(
    wf: Any,
    runs: int,
    calls: list[tuple[str, Stage]],
    taken: collections.Counter[str],
    announced: Callable[[str], int],
    at_the_end: Callable[[], bool],
) -> None:
    """Run ``runs`` runs of the running `three_steps` ``wf`` one at a time (each hop finds its consumer idle).

    Each step ran once (a handed event and its copy in the log never both ran); every
    step's consumer took events from the node's own writes, and those were not announced
    (``announced(topic)``: the wake-ups of a topic; a hop is announced only when its
    consumer was not idle at the commit, rare here); the log's copies are read too, so
    ``at_the_end()`` (every cursor at the end of the log) comes true.
    """
    steps = [topic(wf.name, s) for s in (Stage.STARTED, Stage.FIRST, Stage.SECOND)]
    eventually(lambda: all(wf.engine.handoff.subscribers(t) for t in steps), what="every step consumer up")
    for i in range(runs):
        run_id = wf.trigger(f"h-{i}", Item(f"h-{i}"))
        wf.await_status(f"h-{i}", run_id, Stage.DONE, timeout=30)
    assert sorted(collections.Counter(calls).values()) == [1] * (3 * runs)
    assert all(taken[t] for t in steps), taken
    hops = sum(taken[t] for t in steps)
    woken = sum(announced(t) for t in steps)
    assert hops + woken >= 3 * runs
    assert woken < runs, (woken, hops)
    eventually(at_the_end, what="cursors at the end of the log", timeout=10)
