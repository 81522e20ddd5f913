"""Order processing: a realistic workflow with branches, retries, pauses, hooks and data deletion.

    CREATED --validate--> VALIDATED --reserve_stock--> STOCK_RESERVED --charge--> CHARGED --ship--> SHIPPED
                                         |
                                         +-- out of stock: run.cancel(reason)

What it shows, one order at a time:

* order-1 goes all the way. The payment gateway times out on the first attempt; the step
  raises, and the engine retries it after ``err_backoff``. ``on_complete`` fires at the end.
* order-2 asks for more than is in stock: ``reserve_stock`` cancels the run with a reason,
  and ``on_cancel`` fires.
* order-3 ships to a country the carrier does not serve yet: ``ship`` fails every time,
  so after ``pause_after_err_count`` errors the run is paused and ``on_pause`` alerts.
  Once the cause is fixed, ``wf.resume(run_id)`` runs the step again and the order ships.
* Finally the customer of order-1 asks to be forgotten: ``wf.delete_data(run_id)``
  replaces the stored object with what ``custom_delete`` returns (personal data scrubbed)
  and the run ends in the DATA_DELETED run state.

Steps run at least once (a retry or a crash can run one again), so each external call
here is idempotent: keyed by the order id.

Run it with ``python examples/order_processing.py``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import queue
import sys

import actorflow as af
from actorflow.adapters.memory import MemoryEventStreamer, MemoryRecordStore, MemoryRoleScheduler
from actorflow.testing import wait_for


class Status(enum.IntEnum):
    CREATED = 1
    VALIDATED = 2
    STOCK_RESERVED = 3
    CHARGED = 4
    SHIPPED = 5


@dataclasses.dataclass
class Order:
    id: str = ""
    customer: str = ""
    card_number: str = ""
    country: str = ""
    items: dict[str, int] = dataclasses.field(default_factory=dict)  # sku -> quantity
    total: int = 0  # in cents
    charge_id: str = ""
    tracking: str = ""


# --- The outside world (stand-ins for real services) ---------------------------------------

PRICES = {"kettle": 2500, "mug": 800, "teapot": 4200}
STOCK = {"kettle": 10, "mug": 50, "teapot": 1}
RESERVATIONS: dict[str, dict[str, int]] = {}  # order id -> items reserved


class PaymentGateway:
    """Charges cards; its first call for each order times out."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self.charges: dict[str, int] = {}  # idempotency key (order id) -> amount

    def charge(self, order_id: str, card_number: str, amount: int) -> str:
        self.attempts[order_id] = self.attempts.get(order_id, 0) + 1
        if self.attempts[order_id] == 1:
            raise ConnectionError("payment gateway timed out")
        self.charges.setdefault(order_id, amount)  # charging twice is a no-op
        return f"ch_{order_id}_{card_number[-4:]}"


class Carrier:
    """Ships parcels to the countries it serves."""

    def __init__(self) -> None:
        self.countries = {"GB", "DE", "FR"}

    def ship(self, order_id: str, country: str) -> str:
        if country not in self.countries:
            raise ValueError(f"carrier does not ship to {country!r}")
        return f"TRACK-{order_id.upper()}"


gateway = PaymentGateway()
carrier = Carrier()


# --- Steps ----------------------------------------------------------------------------------


def validate(run: af.Run[Order, Status]) -> Status:
    order = run.object
    order.total = sum(PRICES[sku] * qty for sku, qty in order.items.items())
    print(f"  [{order.id}] validated: {order.items}, total {order.total / 100:.2f}")
    return Status.VALIDATED


def reserve_stock(run: af.Run[Order, Status]) -> Status:
    order = run.object
    if order.id not in RESERVATIONS:  # idempotent: reserve once per order
        short = [sku for sku, qty in order.items.items() if STOCK.get(sku, 0) < qty]
        if short:
            print(f"  [{order.id}] out of stock: {', '.join(short)}")
            # A branch that ends the run: cancel it, with a reason kept on the record.
            return run.cancel(f"out of stock: {', '.join(short)}")
        for sku, qty in order.items.items():
            STOCK[sku] -= qty
        RESERVATIONS[order.id] = dict(order.items)
    print(f"  [{order.id}] stock reserved")
    return Status.STOCK_RESERVED


def charge(run: af.Run[Order, Status]) -> Status:
    order = run.object
    attempt = gateway.attempts.get(order.id, 0) + 1
    try:
        order.charge_id = gateway.charge(order.id, order.card_number, order.total)
    except ConnectionError as exc:
        print(f"  [{order.id}] charge attempt {attempt} failed ({exc}); the engine will retry")
        raise  # a step that raises stores nothing and is retried after err_backoff
    print(f"  [{order.id}] charged on attempt {attempt}: {order.charge_id}")
    return Status.CHARGED


def ship(run: af.Run[Order, Status]) -> Status:
    order = run.object
    try:
        order.tracking = carrier.ship(order.id, order.country)
    except ValueError as exc:
        print(f"  [{order.id}] shipping failed: {exc}")
        raise
    print(f"  [{order.id}] shipped: {order.tracking}")
    return Status.SHIPPED


def scrub(order: Order) -> Order:
    """``custom_delete``: what is kept of an order once its data is deleted."""
    return dataclasses.replace(order, customer="[deleted]", card_number="", country="")


# --- Wiring ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Hooks:
    """Run-state hooks hand the records over to main() through queues."""

    completed: queue.Queue[af.TypedRecord[Order, Status]] = dataclasses.field(default_factory=queue.Queue)
    cancelled: queue.Queue[af.TypedRecord[Order, Status]] = dataclasses.field(default_factory=queue.Queue)
    paused: queue.Queue[af.TypedRecord[Order, Status]] = dataclasses.field(default_factory=queue.Queue)


def build_workflow(hooks: Hooks) -> af.Workflow[Order, Status]:
    b = af.Builder("orders", Order, Status)
    b.add_step(Status.CREATED, validate, Status.VALIDATED)
    b.add_step(Status.VALIDATED, reserve_stock, Status.STOCK_RESERVED)
    b.add_step(Status.STOCK_RESERVED, charge, Status.CHARGED)
    # Pause a run after 3 failed attempts at shipping it, instead of retrying for ever.
    b.add_step(Status.CHARGED, ship, Status.SHIPPED).with_options(pause_after_err_count=3)
    b.on_complete(hooks.completed.put)  # e.g. send the confirmation email
    b.on_cancel(hooks.cancelled.put)  # e.g. tell the customer
    b.on_pause(hooks.paused.put)  # e.g. page whoever is on call
    return b.build(
        MemoryEventStreamer(),
        MemoryRecordStore(),
        MemoryRoleScheduler(),
        # Every process inherits these; a step's own .with_options(...) overrides them.
        # A short back-off keeps the example fast (the default is 1 second).
        defaults=af.Options(err_backoff=0.05),
        custom_delete=scrub,
    )


def main() -> int:
    # The engine logs each step error as a WARNING on the "actorflow" logger (visible once
    # an application configures logging). The failures below are on purpose: keep them quiet.
    logging.getLogger("actorflow").setLevel(logging.ERROR)
    hooks = Hooks()
    wf = build_workflow(hooks)
    card = "4111111111111111"
    checks: dict[str, bool] = {}

    wf.run()
    try:
        print("order-1: the happy path, with a transient payment failure")
        order1 = Order("order-1", "Ada Lovelace", card, "GB", {"kettle": 1, "mug": 2})
        run_id1 = wf.trigger(order1.id, initial_value=order1)
        shipped = wf.await_status(order1.id, run_id1, Status.SHIPPED, timeout=10)
        done = hooks.completed.get(timeout=10)
        print(f"  on_complete: {done.foreign_id} is {done.run_state.name}, tracking {done.object.tracking}")
        checks["order-1 shipped after a retry"] = shipped.object.tracking == "TRACK-ORDER-1" and (
            gateway.attempts["order-1"] == 2
        )

        print("order-2: out of stock, so cancelled")
        order2 = Order("order-2", "Bob Jones", card, "DE", {"teapot": 3})
        run_id2 = wf.trigger(order2.id, initial_value=order2)
        cancelled = hooks.cancelled.get(timeout=10)
        print(f"  on_cancel: {cancelled.foreign_id} is {cancelled.run_state.name}: {cancelled.meta.run_state_reason}")
        checks["order-2 cancelled"] = cancelled.run_id == run_id2 and "teapot" in cancelled.meta.run_state_reason

        print("order-3: the carrier cannot ship it, so it is paused")
        order3 = Order("order-3", "Cy Young", card, "NZ", {"mug": 4})
        run_id3 = wf.trigger(order3.id, initial_value=order3)
        paused = hooks.paused.get(timeout=10)
        print(f"  on_pause: {paused.foreign_id} is {paused.run_state.name} at {paused.status.name}")
        print(f"  reason: {paused.meta.run_state_reason}")
        carrier.countries.add("NZ")  # fix the cause...
        print("  carrier now ships to NZ; resuming the run")
        wf.resume(run_id3)  # ...and run the paused step again
        resumed = wf.await_status(order3.id, run_id3, Status.SHIPPED, timeout=10)
        hooks.completed.get(timeout=10)
        checks["order-3 shipped after resume"] = resumed.object.tracking == "TRACK-ORDER-3"

        print("order-1: the customer asks for their data to be deleted")
        wf.delete_data(run_id1, "GDPR request")
        deleted = wait_for(wf, order1.id, lambda r: r.run_state is af.RunState.DATA_DELETED, timeout=10)
        stored = wf.record_store.lookup(run_id1)
    finally:
        wf.stop()

    stored_object = json.loads(stored.object)
    print(f"  stored record: run state {stored.run_state.name}, object {stored_object}")
    checks["order-1 data deleted"] = (
        stored.run_state is af.RunState.DATA_DELETED
        and card not in stored.object.decode()
        and deleted.object.customer == "[deleted]"
        and deleted.object.tracking == "TRACK-ORDER-1"  # what custom_delete kept
    )

    for name, passed in checks.items():
        print(f"{'ok  ' if passed else 'FAIL'} {name}")
    ok = all(checks.values())
    print("order processing: OK" if ok else "order processing: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
