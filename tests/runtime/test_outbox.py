"""The outbox relay when the event streamer fails: it backs off and relays the rows again."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from tests.model import Item, Stage, two_steps


class DownStreamer(MemoryEventStreamer):
    """A streamer whose senders fail to flush the first ``failures`` times (a broker outage)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.left = failures
        self.flushes: list[float] = []
        self.lock = threading.Lock()

    def new_sender(self, topic: str) -> Any:
        sender = super().new_sender(topic)
        inner = sender.flush

        def flush() -> None:
            with self.lock:
                self.flushes.append(time.monotonic())
                if self.left > 0:
                    self.left -= 1
                    msg = "the brokers are unreachable"
                    raise af.ActorflowError(msg)
            inner()

        sender.flush = flush  # type: ignore[method-assign]
        return sender


def test_a_failing_streamer_backs_the_outbox_off_instead_of_crashing_it() -> None:
    """Adapter errors: the relay waits the outbox's err_backoff, relays again, and is never restarted."""
    backoff = 0.2
    streamer = DownStreamer(failures=2)
    wf = two_steps("outbox-down").build(
        streamer,
        MemoryRecordStore(outbox=True),
        MemoryRoleScheduler(),
        outbox=af.OutboxOptions(polling_frequency=0.01, err_backoff=backoff),
    )
    registry = CollectorRegistry()
    with af.Supervisor([wf], registry=registry):
        run_id = wf.trigger("x", Item("x"))
        assert wf.await_status("x", run_id, Stage.DONE, timeout=10).object.steps == 2
    first_three = streamer.flushes[:3]
    gaps = [later - earlier for earlier, later in itertools.pairwise(first_three)]
    assert all(gap >= backoff * 0.9 for gap in gaps), f"relayed again before err_backoff: {gaps}"
    restarts = registry.get_sample_value(
        "actorflow_actor_restarts_total", {"workflow_name": "outbox-down", "process_name": "outbox-consumer"}
    )
    assert restarts == 0, "an adapter error is backed off, not an actor crash"
    errors = registry.get_sample_value(
        "workflow_process_error_count", {"workflow_name": "outbox-down", "process_name": "outbox-consumer"}
    )
    assert errors == 2
