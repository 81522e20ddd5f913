"""A supervisor serves the web UI beside its node: its processes with their states and lag, its workflows' graphs."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra")

import actorflow as af
from tests.model import Order, Status
from tests.ui import flow

pytestmark = pytest.mark.timeout(60)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a local test server
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_running_supervisor_serves_its_ui_until_it_stops(tmp_path: Path, opened):
    wf = flow.build(str(tmp_path / "node.db"))
    for adapter in (wf.event_streamer, wf.record_store, wf.timeout_store):
        opened(adapter)
    supervisor = af.Supervisor([wf])
    with pytest.raises(af.ActorflowError, match="start the supervisor"):
        supervisor.serve_ui()
    supervisor.start()
    try:
        with pytest.raises(ValueError, match="needs a token"):
            supervisor.serve_ui(host="0.0.0.0")  # noqa: S104 - refused: beyond loopback without a token
        url = supervisor.serve_ui()
        run_id = wf.trigger("s-1", Order(id="s-1"))
        wf.await_status("s-1", run_id, Status.DONE, timeout=15)
        code, nodes = _get(url + "nodes")
        assert code == 200
        assert 'id="processes"' in nodes
        assert re.search(r"ui-orders/started-consumer-1-of-1</td><td>(Running|Idle)", nodes), nodes
        assert supervisor.node_id in nodes
        code, workflows = _get(url + "workflows")
        assert workflows.count('class="status') == 6
        code, run_page = _get(url + f"runs/{run_id}")
        assert (code, "Completed" in run_page) == (200, True)
    finally:
        supervisor.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)  # noqa: S310 - the UI stopped with the node
