"""Which processes a workflow has, with the original's process and role names."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from actorflow.options import Options, ResolvedOptions
from actorflow.processes.connector import ConnectorProcess
from actorflow.processes.delete import DeleteConsumer
from actorflow.processes.hook import HookConsumer
from actorflow.processes.outbox import OutboxRelay
from actorflow.processes.paused_retry import PausedRetry
from actorflow.processes.schedule import ScheduleProcess
from actorflow.processes.step import StepConsumer
from actorflow.processes.timeout import TimeoutInserter, TimeoutPoller
from actorflow.topics import delete_topic, make_role, run_state_change_topic, topic

if TYPE_CHECKING:
    from actorflow.engine import Engine
    from actorflow.metrics import ProcessMetrics
    from actorflow.processes.base import Process
    from actorflow.specs import ScheduleSpec

__all__ = ["ProcessPlan", "plan_schedule", "plan_workflow"]


@dataclasses.dataclass(frozen=True)
class ProcessPlan:
    """How to make one process of a workflow."""

    engine: Engine[Any, Any]
    name: str
    role: str
    make: Callable[[ProcessMetrics], Process]

    @property
    def key(self) -> str:
        """``<workflow>/<process name>``: the process's key in `Supervisor.states`."""
        return f"{self.engine.name}/{self.name}"


def _plan(
    engine: Engine[Any, Any], name: str, role: str, options: ResolvedOptions, cls: type[Process], **kwargs: Any
) -> ProcessPlan:
    def make(metrics: ProcessMetrics) -> Process:
        return cls(engine, name, role, options, metrics, **kwargs)

    return ProcessPlan(engine, name, role, make)


def _status_key(engine: Engine[Any, Any], status: int) -> str:
    return engine.transitions.describe(status)


def plan_workflow(engine: Engine[Any, Any]) -> list[ProcessPlan]:
    """Every process the engine ``engine`` runs, in a stable order."""
    config = engine.config
    defaults = config.defaults
    plans: list[ProcessPlan] = []
    for status, step in config.steps.items():
        opts = step.options.over(defaults).resolve()
        count = max(1, opts.parallel_count)
        plans.extend(
            _plan(
                engine,
                make_role(_status_key(engine, status), "consumer", i, "of", count),
                make_role(engine.name, status, "consumer", i, "of", count),
                opts,
                StepConsumer,
                topic=topic(engine.name, status),
                shard=i - 1,
                shard_count=count,
                status=status,
                fn=step.fn,
                destinations=step.destinations,
            )
            for i in range(1, count + 1)
        )
    if config.outbox is not None and not engine.capabilities.publishes_directly:
        plans.append(
            _plan(
                engine,
                "outbox-consumer",
                make_role(engine.name, "outbox-consumer"),
                defaults.resolve(),
                OutboxRelay,
                outbox=config.outbox,
            )
        )
    if engine.timeout_store is not None:
        for status, spec in config.timeouts.items():
            opts = Options(parallel_count=1, lag=0).over(spec.options.over(defaults)).resolve()
            name = _status_key(engine, status)
            plans.append(
                _plan(
                    engine,
                    make_role(name, "timeout-consumer"),
                    make_role(engine.name, status, "timeout-consumer"),
                    opts,
                    TimeoutPoller,
                    spec=spec,
                    store=engine.timeout_store,
                )
            )
            plans.append(
                _plan(
                    engine,
                    make_role(name, "timeout-auto-inserter-consumer"),
                    make_role(engine.name, status, "timeout-auto-inserter-consumer"),
                    opts,
                    TimeoutInserter,
                    topic=topic(engine.name, status),
                    spec=spec,
                    store=engine.timeout_store,
                )
            )
    for connector in config.connectors:
        opts = connector.options.over(defaults).resolve()
        count = max(1, opts.parallel_count)
        for i in range(1, count + 1):
            name = make_role(connector.name, "connector-to", engine.name, "consumer", i, "of", count)
            plans.append(
                _plan(engine, name, name, opts, ConnectorProcess, spec=connector, shard=i - 1, shard_count=count)
            )
    single = Options(parallel_count=1).over(defaults).resolve()
    for state, hook in config.hooks.items():
        plans.append(
            _plan(
                engine,
                make_role(str(state), "run-state-change-hook-consumer"),
                make_role(engine.name, str(state), "run-state-change-hook-consumer"),
                single,
                HookConsumer,
                topic=run_state_change_topic(engine.name),
                state=state,
                hook=hook,
            )
        )
    plans.append(
        _plan(
            engine,
            "delete-consumer",
            make_role(engine.name, "delete-consumer"),
            Options(parallel_count=1, lag=0).over(defaults).resolve(),
            DeleteConsumer,
            topic=delete_topic(engine.name),
        )
    )
    if config.pause_retry is not None:
        after = config.pause_retry
        alert = 3 * after if 3 * after >= 60 else after + 300  # noqa: PLR2004 - the original's rule
        plans.append(
            _plan(
                engine,
                "paused-records-retry-consumer",
                make_role(engine.name, "paused-records-retry-consumer"),
                Options(parallel_count=1, lag=after, lag_alert=alert).over(defaults).resolve(),
                PausedRetry,
                topic=run_state_change_topic(engine.name),
            )
        )
    plans.extend(plan_schedule(engine, s) for s in engine.schedules)
    return plans


def plan_schedule(engine: Engine[Any, Any], schedule: ScheduleSpec[Any]) -> ProcessPlan:
    """The process of one cron schedule."""
    return _plan(
        engine,
        make_role(schedule.foreign_id, "scheduler", schedule.spec),
        make_role(engine.name, schedule.foreign_id, "scheduler", schedule.spec),
        engine.config.defaults.resolve(),
        ScheduleProcess,
        spec=schedule,
    )
