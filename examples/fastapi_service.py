"""A FastAPI service that embeds the workflow engine: async steps, a pydantic object, the supervisor in its lifespan.

- ``POST /orders`` triggers a run (``await wf.trigger_async``) and answers at once;
- ``GET /orders/{order_id}?run_id=...&wait=PAID`` awaits it (``await wf.await_status_async``)
  without blocking the event loop, so other requests are served meanwhile;
- ``GET /metrics`` serves the node's Prometheus metrics.

The steps are ``async def`` (they would call a payment API with an async HTTP client) and
run on the engine's own event loop, many at once. The node is the web service itself:
``async with af.Supervisor([wf])`` in the lifespan starts it with the app and stops it
cleanly with the app (the steps in hand finish first).

Run it with ``python examples/fastapi_service.py``: it serves the app with uvicorn on a free
port, places three orders through HTTP, reads them back, and stops. (``uvicorn
fastapi_service:app`` serves it the usual way, its database in ``orders.db``.) Needs the
``ui`` and ``pydantic`` extras and FastAPI: ``pip install "actorflow[ui,pydantic]" fastapi``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import os
import socket
import sys
import tempfile
import threading
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI, HTTPException, Response
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

import actorflow as af
from actorflow.adapters import sqlite
from actorflow.adapters.memory import MemoryRoleScheduler
from actorflow.metrics import exposition


class Status(enum.IntEnum):
    PLACED = 1
    PAID = 2
    SHIPPED = 3


class Order(BaseModel):
    """The workflow's object, and the request's body: one pydantic model for both."""

    id: str = ""
    amount_cents: int = 0
    payment_ref: str = ""
    tracking: str = ""


async def pay(run: af.Run[Order, Status]) -> Status:
    await asyncio.sleep(0.02)  # an await on a payment API: other runs' steps go on meanwhile
    run.object.payment_ref = f"pay-{run.run_id[:8]}"
    return Status.PAID


async def ship(run: af.Run[Order, Status]) -> Status:
    await asyncio.sleep(0.02)
    run.object.tracking = f"TRK-{run.object.id}"
    return Status.SHIPPED


def build_workflow(path: str) -> af.Workflow[Order, Status]:
    """The order workflow on a SQLite file (records and events in it); this service is its one node."""
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.PLACED, pay, Status.PAID)
    b.add_step(Status.PAID, ship, Status.SHIPPED)
    return b.build(sqlite.SqliteEventStreamer(path), sqlite.SqliteRecordStore(path), MemoryRoleScheduler())


class Node:
    """What the app holds while it runs: the workflow and the registry its node counts in."""

    wf: af.Workflow[Order, Status]
    registry = CollectorRegistry()


@contextlib.asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    Node.wf = build_workflow(os.environ.get("ORDERS_DB", "orders.db"))
    async with af.Supervisor([Node.wf], registry=Node.registry):  # started and stopped with the app
        yield


app = FastAPI(lifespan=lifespan)


@app.post("/orders", status_code=202)
async def place(order: Order) -> dict[str, str]:
    """Start the order's run; answer at once with its run id."""
    try:
        run_id = await Node.wf.trigger_async(order.id, order)
    except af.WorkflowInProgress:
        raise HTTPException(409, f"order {order.id} is already in progress") from None
    return {"run_id": run_id}


@app.get("/orders/{order_id}")
async def read(order_id: str, run_id: str, wait: str = "SHIPPED", seconds: float = 10.0) -> dict[str, object]:
    """The order once its run reached ``wait`` (a status name): awaited without blocking the loop."""
    try:
        run = await Node.wf.await_status_async(order_id, run_id, Status[wait], timeout=seconds)
    except KeyError:
        raise HTTPException(400, f"no status {wait!r}") from None
    except af.AwaitTimeout:
        raise HTTPException(504, f"order {order_id} did not reach {wait} within {seconds}s") from None
    return {"status": run.status.name, "run_state": str(run.run_state), "order": run.object.model_dump()}


@app.get("/metrics")
async def metrics() -> Response:
    return Response(exposition(Node.registry), media_type="text/plain; version=0.0.4")


# -- the demonstration: serve the app, be its client ------------------------------------------


def _call(url: str, body: dict[str, object] | None = None) -> dict[str, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own server
        return json.loads(response.read())  # type: ignore[no-any-return]


def main() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        while not server.started:
            threading.Event().wait(0.01)
        placed = {
            f"order-{i}": _call(f"{base}/orders", {"id": f"order-{i}", "amount_cents": 1000 + i}) for i in range(3)
        }
        for order_id, answer in placed.items():
            got = _call(f"{base}/orders/{order_id}?run_id={answer['run_id']}&wait=SHIPPED")
            order = got["order"]
            print(f"{order_id}: {got['status']} ({got['run_state']}), tracking {order['tracking']}")  # type: ignore[index]
        text = urllib.request.urlopen(f"{base}/metrics", timeout=10).read().decode()  # noqa: S310
        changes = [line for line in text.splitlines() if line.startswith("workflow_run_state_changes{")]
        print(f"metrics: {len(changes)} run-state-change series")
    finally:
        server.should_exit = True
        thread.join(timeout=15)
    print("fastapi_service: OK")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("ORDERS_DB", str(Path(tempfile.mkdtemp(prefix="orders-")) / "orders.db"))
    sys.exit(main())
