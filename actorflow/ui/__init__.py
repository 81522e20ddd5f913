"""The web UI (``actorflow ui``, the ``ui`` extra): browse runs, see why they are stuck, act on them.

`create_app` makes the ASGI application over `Sources` (a store's `RunsAdmin`, and the
workflows' code when known). `UiServer` serves it with uvicorn from a thread of its own,
on a socket bound beforehand so the address is known before the first request: ``actorflow
ui`` runs one until a signal (`serve`), and `Supervisor.serve_ui` runs one beside a node.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from .app import Sources, create_app

__all__ = ["LOOPBACK", "Sources", "UiServer", "bind", "create_app", "serve"]

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
"""Addresses only this machine reaches: the UI may serve them without a token."""

_START_TIMEOUT = 10.0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one); `OSError` when it cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class UiServer:
    """uvicorn serving ``app`` on ``sock`` from its own thread, until `stop` (which closes the socket)."""

    def __init__(self, app: Callable[..., object], sock: socket.socket) -> None:
        import uvicorn  # noqa: PLC0415 - the ui extra

        self._sock = sock
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="actorflow-ui", daemon=True
        )

    @property
    def port(self) -> int:
        """The port served."""
        return int(self._sock.getsockname()[1])

    @property
    def alive(self) -> bool:
        """True while the server's thread runs."""
        return self._thread.is_alive()

    def start(self) -> None:
        """Serve in the background; return once uvicorn accepts connections (its thread not in the main: no signals)."""
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)  # uvicorn sets a flag, nothing to wait on

    def stop(self) -> None:
        """Finish the requests in hand, stop, and close the socket."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._sock.close()


def serve(app: Callable[..., object], sock: socket.socket, ready: Callable[[], None] | None = None) -> None:
    """Serve ``app`` on ``sock`` until SIGINT or SIGTERM, then stop gracefully.

    The main thread waits for the signal (`stop_signals`, as ``actorflow run`` does), so the
    process exits 0 after a clean stop rather than re-raising the signal as uvicorn would;
    ``ready`` is called once the server accepts connections.
    """
    from actorflow._signals import stop_signals  # noqa: PLC0415

    server = UiServer(app, sock)
    with stop_signals(lambda name: print(f"received {name}; stopping", flush=True)) as stop:  # noqa: T201
        server.start()
        try:
            if ready is not None:
                ready()
            while not stop.wait(0.5) and server.alive:
                pass
        finally:
            server.stop()
