"""The node's HTTP endpoint: ``/metrics`` (Prometheus text) and ``/healthz``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from actorflow.metrics import exposition

__all__ = ["MetricsServer"]

HealthFunc = Callable[[], tuple[bool, dict[str, Any]]]


class MetricsServer:
    """Serves a registry's metrics and a health check from one thread, until `stop`.

    The address is bound when it is made (an `OSError` then, e.g. the port in use), and
    served from `start` on.
    """

    def __init__(self, registry: CollectorRegistry, host: str, port: int, health: HealthFunc) -> None:
        self.registry = registry
        self.health = health
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="actorflow-metrics", daemon=True)

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (if it started), release the address and join the thread."""
        started = self._thread.is_alive()
        if started:
            self._server.shutdown()  # waits for serve_forever: only once it runs
        self._server.server_close()
        if started:
            self._thread.join(2.0)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, exposition(server.registry))
                elif path == "/healthz":
                    healthy, body = server.health()
                    self._send(200 if healthy else 503, "application/json", json.dumps(body).encode())
                else:
                    self._send(404, "text/plain", b"not found: try /metrics or /healthz\n")

            def _send(self, code: int, content_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002 - stdlib signature
                return

        return Handler
