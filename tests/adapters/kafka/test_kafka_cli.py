"""Kafka on the command line: `--backend kafka` for the benchmark and the demo."""

from __future__ import annotations

import pytest

from actorflow.backends import BACKENDS, make_backend
from tests.test_cli import actorflow

pytestmark = pytest.mark.kafka


def test_kafka_is_a_named_backend_that_needs_brokers():
    """make_backend('kafka') without bootstrap servers says which flag is missing."""
    assert "kafka" in BACKENDS
    with pytest.raises(ValueError, match="--bootstrap-servers"):
        make_backend("kafka")


def test_the_benchmark_runs_on_kafka_with_brokers_from_the_environment(kafka_broker, tmp_path):
    """`actorflow bench --backend kafka` (brokers from ACTORFLOW_BOOTSTRAP_SERVERS) measures and cleans up."""
    result = actorflow(
        "bench",
        "--backend",
        "kafka",
        "--runs",
        "100",
        "--latency-runs",
        "5",
        "--output",
        "-",
        cwd=tmp_path,
        timeout=300,
        env={"ACTORFLOW_BOOTSTRAP_SERVERS": kafka_broker},
    )
    assert result.returncode == 0, result.stderr
    assert "backend=kafka" in result.stdout
    assert "records and timeouts in SQLite" in result.stdout
    assert "transitions/s" in result.stdout
    assert not list(tmp_path.glob("actorflow-*")), "the temporary database was left behind"


def test_the_demo_runs_on_kafka(kafka_broker, tmp_path):
    """`actorflow demo --backend kafka --bootstrap-servers ...` ships every order."""
    result = actorflow(
        "demo", "--runs", "30", "--backend", "kafka", "--bootstrap-servers", kafka_broker, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "on the kafka backend" in result.stdout
    assert "30/30 orders shipped" in result.stdout
