"""The web UI (``actorflow ui``, the ``ui`` extra): browse runs, see why they are stuck, act on them.

`create_app` makes the ASGI application over `Sources` (a store's `RunsAdmin`, and the
workflows' code when known); `serve` runs it with uvicorn on a socket bound beforehand,
so the address is known (and printed) before the first request.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from .app import Sources, create_app

__all__ = ["Sources", "bind", "create_app", "serve"]


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
    sock.set_inheritable(True)
    return sock


def serve(app: Callable[..., object], sock: socket.socket, ready: Callable[[], None] | None = None) -> None:
    """Serve ``app`` on ``sock`` until SIGINT or SIGTERM, then stop gracefully and close it.

    uvicorn serves from a thread of its own while the main thread waits for the signal
    (`stop_signals`, as ``actorflow run`` does), so the process exits 0 after a clean stop
    rather than re-raising the signal; ``ready`` is called once the server is starting.
    """
    import uvicorn  # noqa: PLC0415 - the ui extra

    from actorflow._signals import stop_signals  # noqa: PLC0415

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="actorflow-ui", daemon=True)
    try:
        with stop_signals(lambda name: print(f"received {name}; stopping", flush=True)) as stop:  # noqa: T201
            thread.start()
            if ready is not None:
                ready()
            while not stop.wait(0.5) and thread.is_alive():
                pass
            server.should_exit = True
            thread.join(timeout=10)
    finally:
        sock.close()
