"""The command line: run a node until SIGTERM, draw a diagram, the demo, the benchmark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

FLOW = """
import dataclasses, enum
import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler

class Status(enum.IntEnum):
    ORDER_PLACED = 1
    PAID = 2
    SHIPPED = 3
    REFUNDED = 4

@dataclasses.dataclass
class Order:
    id: str = ""

b = af.Builder("cli-orders", Order, Status)
b.add_step(Status.ORDER_PLACED, lambda r: Status.PAID, Status.PAID)
b.add_step(Status.PAID, lambda r: Status.SHIPPED, Status.SHIPPED, Status.REFUNDED)
wf = b.build(MemoryEventStreamer(), MemoryRecordStore(), MemoryRoleScheduler())

def make():
    return [wf]
"""


@pytest.fixture
def flow_dir(tmp_path: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOW)
    return tmp_path


def actorflow(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorflow.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_diagram_prints_mermaid(flow_dir: Path):
    result = actorflow("diagram", "flows:wf", cwd=flow_dir)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("stateDiagram-v2\n\tdirection LR\n")
    assert "\tOrder_Placed: Order Placed" in out
    assert "\t[*] --> Order_Placed" in out
    assert "\tstate Paid_branching <<choice>>" in out
    assert "\tPaid_branching --> Refunded" in out
    assert "\tShipped --> [*]" in out


def test_a_bad_target_is_a_clear_error(flow_dir: Path):
    result = actorflow("diagram", "flows:nothing", cwd=flow_dir)
    assert result.returncode != 0
    assert "has no attribute 'nothing'" in result.stderr
    result = actorflow("diagram", "no_colon", cwd=flow_dir)
    assert "expected MODULE:ATTR" in result.stderr


def test_run_serves_until_sigterm_then_stops_cleanly(flow_dir: Path):
    """`actorflow run` runs a node (here from a factory) until SIGTERM and exits 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "actorflow.cli", "run", "flows:make", "--metrics-port", "0"],
        cwd=flow_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "running cli-orders" in line
        assert "/metrics" in line
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out


def test_demo_runs_to_the_end(tmp_path: Path):
    """`actorflow demo` processes every run and prints a summary (runs from ACTORFLOW_RUNS)."""
    result = actorflow("demo", cwd=tmp_path, env={"ACTORFLOW_RUNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "200/200 orders shipped" in result.stdout
    assert "done: 200 runs, 800 transitions" in result.stdout
    assert "/metrics" in result.stdout


def test_bench_appends_its_figures(tmp_path: Path):
    out = tmp_path / "BENCH.md"
    result = actorflow("bench", "--runs", "300", "--latency-runs", "20", "--output", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "transitions/s" in result.stdout
    text = out.read_text()
    assert "## " in text
    assert "transitions/s" in text
    assert "p50" in text


# Runs the rest of the command line with SIGINT ignored: exec keeps an ignored signal ignored.
IGNORING_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])"
)


@pytest.mark.parametrize("started_with", ["SIGINT handled", "SIGINT ignored"])
def test_demo_serve_keeps_the_metrics_up_until_interrupted(tmp_path: Path, started_with: str):
    """`actorflow demo --serve` finishes the runs, keeps /metrics up, and stops cleanly on Ctrl-C.

    Also when started with SIGINT ignored (a background job of a script; ``/usr/bin/time``
    does it to its child): Python then raises no KeyboardInterrupt, so the command
    handles the signal itself.
    """
    import re
    import urllib.request

    command = [sys.executable, "-m", "actorflow.cli", "demo", "--runs", "50", "--serve"]
    if started_with == "SIGINT ignored":
        command = [sys.executable, "-c", IGNORING_SIGINT, *command]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = None
        for line in proc.stdout:
            found = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
            if found:
                port = int(found.group(1))
            if "serving metrics" in line:
                break
        assert port is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert 'workflow_run_state_changes{current_run_state="Completed"' in text
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
