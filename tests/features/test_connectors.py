"""Connectors: events of an external stream reach the user's function, each exactly once."""

from __future__ import annotations

import threading

import actorflow as af
from actorflow.adapters.memory import MemoryConnector
from actorflow.testing import require
from tests.model import Order, Status


class Handled:
    """Connector events handled, in order, by event id."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: list[str] = []

    def add(self, event_id: str) -> int:
        with self.lock:
            self.ids.append(event_id)
            return self.ids.count(event_id)

    def snapshot(self) -> list[str]:
        with self.lock:
            return list(self.ids)


def _events(*ids: str) -> list[af.ConnectorEvent]:
    return [af.ConnectorEvent(id=i, foreign_id=f"customer-{i}", type="signup") for i in ids]


def _builder(
    connector: MemoryConnector, handled: Handled, *, fail_first: str = "", options: af.Options | None = None
) -> af.Builder[Order, Status]:
    """Each connector event triggers a run for its foreign id; STARTED -> DONE."""
    b = af.Builder("signups", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)

    def on_event(api: af.Workflow[Order, Status], event: af.ConnectorEvent) -> None:
        n = handled.add(event.id)
        if event.id == fail_first and n == 1:
            msg = "downstream unavailable"
            raise RuntimeError(msg)
        api.trigger(event.foreign_id, Order(id=event.id))

    spec = b.add_connector("crm", connector, on_event)
    if options is not None:
        spec.with_options(options)
    return b


def test_connector_events_trigger_runs(start):
    """Each event of the connector triggers a run, which completes."""
    handled = Handled()
    wf = start(_builder(MemoryConnector(_events("1", "2", "3")), handled))
    for i in ("1", "2", "3"):
        require(wf, f"customer-{i}", Status.DONE, Order(id=i), timeout=5)
    assert handled.snapshot() == ["1", "2", "3"]


def test_every_event_is_handled_exactly_once_over_three_shards(start, poll_until):
    """With parallel_count=3 no event is dropped and none is handled twice."""
    ids = [str(i) for i in range(60)]
    handled = Handled()
    wf = start(_builder(MemoryConnector(_events(*ids)), handled, options=af.Options(parallel_count=3)))
    assert {f"crm-connector-to-signups-consumer-{i}-of-3" for i in (1, 2, 3)} <= set(wf.states())
    poll_until(lambda: len(set(handled.snapshot())) == len(ids), what="every event handled")
    assert sorted(handled.snapshot(), key=int) == ids


def test_events_of_one_foreign_id_are_handled_in_order_across_shards(start, poll_until):
    """Sharding keys on the foreign id: one customer's events are handled in the order they came."""
    events = [af.ConnectorEvent(id=str(n), foreign_id=f"customer-{n % 10}", type="update") for n in range(60)]
    order: dict[str, list[int]] = {}
    lock = threading.Lock()
    b = af.Builder("signups", Order, Status)
    b.add_step(Status.STARTED, lambda run: Status.DONE, Status.DONE)

    def on_event(api: af.Workflow[Order, Status], event: af.ConnectorEvent) -> None:
        with lock:
            order.setdefault(event.foreign_id, []).append(int(event.id))

    b.add_connector("crm", MemoryConnector(events), on_event).with_options(parallel_count=3)
    start(b)
    poll_until(lambda: sum(len(ids) for ids in order.values()) == len(events), what="every event handled")
    assert all(ids == sorted(ids) for ids in order.values()), order
    assert len(order) == 10


def test_a_raising_connector_function_is_retried(start, poll_until):
    """An event whose function raises is handled again after the back-off, before later events."""
    handled = Handled()
    wf = start(_builder(MemoryConnector(_events("1", "2", "3")), handled, fail_first="2"))
    poll_until(lambda: "3" in handled.snapshot(), what="the event after the failing one")
    assert handled.snapshot() == ["1", "2", "2", "3"]
    run_id = wf.record_store.latest(wf.name, "customer-2").run_id
    wf.await_status("customer-2", run_id, Status.DONE, timeout=5)


def test_events_added_later_are_handled(start, poll_until):
    """Events that arrive while the workflow runs are handled too."""
    connector = MemoryConnector(_events("1"))
    handled = Handled()
    start(_builder(connector, handled))
    poll_until(lambda: handled.snapshot() == ["1"], what="the first event")
    connector.add(*_events("2", "3"))
    poll_until(lambda: handled.snapshot() == ["1", "2", "3"], what="the later events")


def test_connectors_run_when_the_default_parallel_count_is_above_one(start, poll_until):
    """A connector without its own parallel_count is sharded by the default one, and still runs."""
    handled = Handled()
    wf = start(
        _builder(MemoryConnector(_events("1", "2", "3", "4")), handled),
        defaults=af.Options(parallel_count=2, polling_frequency=0.02, err_backoff=0.02),
    )
    assert {"crm-connector-to-signups-consumer-1-of-2", "crm-connector-to-signups-consumer-2-of-2"} <= set(wf.states())
    poll_until(lambda: sorted(handled.snapshot()) == ["1", "2", "3", "4"], what="every event handled")
