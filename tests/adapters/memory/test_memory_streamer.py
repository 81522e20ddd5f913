"""The memory streamer keeps each event compact, and gives back exactly what was sent."""

from __future__ import annotations

from actorflow.adapters.memory import MemoryEventStreamer
from actorflow.event import Header


def _engine_headers(run_id: str) -> dict[str, str]:
    """Headers in the engine's order (`event_headers`), as the compact form keeps them."""
    return {
        Header.WORKFLOW_NAME: "wf",
        Header.FOREIGN_ID: "f-1",
        Header.TOPIC: "wf-1",
        Header.RUN_ID: run_id,
        Header.RUN_STATE: "2",
        Header.RECORD_VERSION: "3",
    }


def test_every_kind_of_headers_comes_back_as_sent():
    """The engine's headers (kept as a tuple), other headers, and engine headers naming another run."""
    streamer = MemoryEventStreamer()
    sent = [
        ("run-a", 7, _engine_headers("run-a")),
        ("run-b", 2**40, {"custom": "x", Header.TOPIC: "wf-1"}),
        ("run-c", 1, _engine_headers("not-run-c")),  # the run id argument wins over the header's
    ]
    for run_id, event_type, headers in sent:
        streamer.publish("wf-1", run_id, event_type, headers)
    receiver = streamer.new_receiver("wf-1", "reader")
    got = list(receiver.receive(10, 0.0))
    assert [(e.id, e.run_id, e.type, e.headers) for e in got] == [
        (i + 1, run_id, event_type, headers) for i, (run_id, event_type, headers) in enumerate(sent)
    ]
    receiver.close()
