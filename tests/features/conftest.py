"""Fixtures of the feature suite: workflows built on the current adapter stack, and stopped.

Every workflow is built through ``stack.build`` (or on ``stack.make`` adapters), so the
suite runs unchanged on each stack in ``tests/conftest.py``'s ``STACKS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import actorflow as af
from tests.model import FAST, T0, Calls, Order, Status
from tests.waiting import eventually

Build = Callable[..., af.Workflow[Any, Any]]


@pytest.fixture
def clock() -> af.FakeClock:
    """The workflows' clock, at 2024-01-01 00:00 UTC until a test moves it."""
    return af.FakeClock(T0)


@pytest.fixture
def built(stack: Any) -> Iterator[list[af.Workflow[Any, Any]]]:
    """Every workflow a test built; each is stopped when the test ends."""
    workflows: list[af.Workflow[Any, Any]] = []
    yield workflows
    for wf in reversed(workflows):
        wf.stop()


@pytest.fixture
def build(stack: Any, clock: af.FakeClock, built: list[af.Workflow[Any, Any]]) -> Build:
    """``build(builder, **build_kwargs)``: the workflow on fresh adapters of the stack (not running).

    The fake clock and the `FAST` defaults are used unless given.
    """

    def _build(builder: af.Builder[Any, Any], **kwargs: Any) -> af.Workflow[Any, Any]:
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("defaults", FAST)
        wf = stack.build(builder, **kwargs)
        built.append(wf)
        return wf

    return _build


@pytest.fixture
def start(build: Build) -> Build:
    """``start(builder, **build_kwargs)``: like `build`, and running."""

    def _start(builder: af.Builder[Any, Any], **kwargs: Any) -> af.Workflow[Any, Any]:
        wf = build(builder, **kwargs)
        wf.run()
        return wf

    return _start


@pytest.fixture
def build_shared(stack: Any, clock: af.FakeClock, built: list[af.Workflow[Any, Any]]) -> Callable[..., list[Any]]:
    """``build_shared(builder, count)``: ``count`` workflow instances over the SAME adapters.

    As a service that only triggers and the nodes that run the steps would be.
    """

    def _build(builder: af.Builder[Any, Any], count: int = 2, **kwargs: Any) -> list[af.Workflow[Any, Any]]:
        adapters = stack.make(clock)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("defaults", FAST)
        kwargs.setdefault("timeout_store", adapters.timeout_store)
        workflows = [
            builder.build(adapters.event_streamer, adapters.record_store, adapters.role_scheduler, **kwargs)
            for _ in range(count)
        ]
        built.extend(workflows)
        return workflows

    return _build


# The async variant of every `linear` test runs on the quick stacks; on the server stacks
# the async steps are covered by test_async.py (every stack), which keeps the suite's time
# within the README's bound.
_ASYNC_LINEAR_STACKS = frozenset({"memory", "sqlite"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the async variant of `linear` tests on the server stacks (see `_ASYNC_LINEAR_STACKS`)."""
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        slow = params.get("step_style") == "async" and params.get("stack") not in _ASYNC_LINEAR_STACKS
        (dropped if slow else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(params=["sync", "async"])
def step_style(request: pytest.FixtureRequest) -> str:
    """How `linear`'s steps are written: ``def`` or ``async def`` (every test of it runs with both)."""
    return str(request.param)


@pytest.fixture
def linear(step_style: str) -> Callable[..., af.Builder[Order, Status]]:
    """``linear(calls, name=..., options=...)``: STARTED -> CHARGED -> SHIPPED -> DONE, three steps.

    Each step adds 1 to ``amount``, appends its name to ``notes`` and logs itself in
    ``calls`` (labels ``charge``, ``ship``, ``finish``); ``options`` go to every step.
    The steps are ``async def`` in the ``async`` variant of each test (`step_style`).
    """

    def _linear(
        calls: Calls | None = None, *, name: str = "orders", options: af.Options | None = None
    ) -> af.Builder[Order, Status]:
        log = calls if calls is not None else Calls()
        b = af.Builder(name, Order, Status)

        def step(label: str, to: Status) -> Callable[[af.Run[Order, Status]], Any]:
            def fn(run: af.Run[Order, Status]) -> Status:
                log.add(label, run.run_id)
                run.object.amount += 1
                run.object.notes.append(label)
                return to

            async def fn_async(run: af.Run[Order, Status]) -> Status:
                return fn(run)

            return fn_async if step_style == "async" else fn

        for frm, label, to in (
            (Status.STARTED, "charge", Status.CHARGED),
            (Status.CHARGED, "ship", Status.SHIPPED),
            (Status.SHIPPED, "finish", Status.DONE),
        ):
            spec = b.add_step(frm, step(label, to), to)
            if options is not None:
                spec.with_options(options)
        return b

    return _linear


@pytest.fixture
def poll_until() -> Callable[..., Any]:
    """``poll_until(fn, timeout=15, what=...)``: the first truthy ``fn()``, else fail the test (`eventually`)."""
    return eventually


@pytest.fixture
def run_state_of() -> Callable[[af.Workflow[Any, Any], str], af.RunState]:
    """``run_state_of(wf, run_id)``: the stored run state of a run."""
    return lambda wf, run_id: wf.record_store.lookup(run_id).run_state
