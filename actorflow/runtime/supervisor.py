"""`Supervisor`: the embeddable node runtime that hosts workflows' processes as actors."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, Self, cast

import pykka

from actorflow._lograte import install_filter
from actorflow.capabilities import Attachable, Membership, NodeInfo
from actorflow.errors import ActorflowError
from actorflow.log import logger
from actorflow.metrics import metrics_for
from actorflow.protocols import new_node_id
from actorflow.runtime.actor import ProcessActor
from actorflow.runtime.messages import ChildExited, ChildRecovered, JoinFleets
from actorflow.runtime.node import Node
from actorflow.runtime.plan import ProcessPlan, plan_schedule, plan_workflow
from actorflow.runtime.restart import RestartPolicy, RestartTracker
from actorflow.runtime.scheduler import SchedulerActor
from actorflow.runtime.state import ProcessState

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from actorflow.engine import Engine
    from actorflow.specs import ScheduleSpec
    from actorflow.web import MetricsServer

__all__ = ["Hosted", "Supervisor"]

_SUBSCRIBE_TIMEOUT = 10.0
# How long a node may hold no role while roles it may work stay unclaimed before /healthz fails.
_STARVED_PATIENCE = 10.0
# An outage (processes exiting with one kind of error) with no exit for this long is over,
# whether or not its processes said they recovered: the next such exit is logged again.
_OUTAGE_QUIET = 60.0


class Hosted(Protocol):
    """What a supervisor hosts: a built workflow (any object with a name and its engine)."""

    @property
    def name(self) -> str:
        """The workflow's name."""
        ...

    @property
    def engine(self) -> Engine[Any, Any]:
        """The workflow's engine."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class _Spawn:
    plans: tuple[ProcessPlan, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _Children:
    """Ask for every child's ref."""


@dataclasses.dataclass(slots=True)
class _Outage:
    """Processes exiting with one kind of error since the first did: logged once, then counted."""

    since: float
    last: float  # the latest exit
    failing: set[str]  # restarted, not recovered yet
    involved: set[str]
    exits: int = 1
    failed_logged: bool = False


class _CrashesReported(logging.Filter):
    """Drops pykka's own record of a process actor's crash (a traceback each time).

    Installed once on the third-party ``pykka`` logger by the supervisor, which logs
    those crashes itself, rate-limited (`_SupervisorActor`).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """False for pykka's "Unhandled exception in ProcessActor" records."""
        return not str(record.msg).startswith("Unhandled exception in ProcessActor")


class _SupervisorActor(pykka.ThreadingActor):
    """Spawns process actors and restarts those that exit unasked, with back-off.

    Exits are logged by outage, not one line each (a database outage restarts every
    process again and again): the first exit of a kind of error is logged in full (its
    traceback), further exits with that kind are counted while processes keep failing,
    and once every process it restarted has done a tick of work again (`ChildRecovered`)
    one line says how many processes, how many restarts and how long.
    """

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node
        self._children: dict[str, tuple[ProcessPlan, pykka.ActorRef[Any]]] = {}
        self._trackers: dict[str, RestartTracker] = {}
        self._outages: dict[str, _Outage] = {}  # by the error's type name

    def on_start(self) -> None:
        import threading  # noqa: PLC0415 - only for the thread registry

        self.node.add_thread(threading.current_thread())
        install_filter("pykka", _CrashesReported)  # the exits are logged here, rate-limited

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Spawn):
            for plan in message.plans:
                self._spawn(plan, 0.0)
        elif isinstance(message, ChildExited):
            self._restart(message)
        elif isinstance(message, ChildRecovered):
            self._recovered(message.key)
        elif isinstance(message, _Children):
            return [(key, ref) for key, (_, ref) in self._children.items()]
        return None

    def _spawn(self, plan: ProcessPlan, delay: float, *, replace: bool = False) -> None:
        current = self._children.get(plan.key)
        if not replace and current is not None and current[1].is_alive():
            logger.warning("%s is already running; not started twice", plan.key)
            return
        tracker = self._trackers.setdefault(plan.key, RestartTracker(self.node.policy))
        tracker.started()
        self._children[plan.key] = (plan, ProcessActor.start(plan, self.node, delay))

    def _restart(self, message: ChildExited) -> None:
        found = self._children.get(message.key)
        if found is None or self.node.stopping:
            return
        plan, _ = found
        tracker = self._trackers[plan.key]
        delay = tracker.crashed()
        metrics = self.node.metrics.process(plan.engine.name, plan.name)
        metrics.restarts.inc()
        metrics.error()
        if tracker.failed:
            self.node.mark_failed(plan.key)
            metrics.failed.set(1)
        self._log_exit(plan.key, message.error, delay, failed=tracker.failed)
        self._spawn(plan, delay, replace=True)

    def _log_exit(self, key: str, error: BaseException | None, delay: float, *, failed: bool) -> None:
        """Log the first exit of an outage in full and the first process marked failed in it; count the rest."""
        kind = type(error).__name__ if error is not None else "no error"
        workflow, _, process = key.partition("/")
        context = {"workflow": workflow, "process_name": process, "node": self.node.node_id}
        now = time.monotonic()
        outage = self._outages.get(kind)
        if outage is None or now - outage.last > _OUTAGE_QUIET:
            self._outages[kind] = _Outage(since=now, last=now, failing={key}, involved={key})
            logger.warning(
                "%s exited (%r); restarting in %.2fs (until processes recover, exits with %s are counted, not logged)",
                key,
                error,
                delay,
                kind,
                exc_info=error,
                extra=context,
            )
            outage = self._outages[kind]
        else:
            outage.exits += 1
            outage.last = now
            outage.failing.add(key)
            outage.involved.add(key)
        if failed and not outage.failed_logged:
            outage.failed_logged = True
            logger.error(
                "%s crashed more than %d times in %.0fs; marked failed, restarting every %.0fs: %r",
                key,
                self.node.policy.max_restarts,
                self.node.policy.window,
                delay,
                error,
                extra=context,
            )

    def _recovered(self, key: str) -> None:
        """A restarted process works again: the outages it was the last failing process of are over."""
        now = time.monotonic()
        for kind, outage in list(self._outages.items()):
            outage.failing.discard(key)
            if not outage.failing:
                del self._outages[kind]
                logger.warning(
                    "%d process(es) recovered after exiting with %s: %d restart(s) in %.1fs",
                    len(outage.involved),
                    kind,
                    outage.exits,
                    now - outage.since,
                )


def _scheduler_node_id(engines: list[Engine[Any, Any]]) -> str | None:
    for engine in engines:
        node_id = getattr(engine.role_scheduler, "node_id", None)
        if isinstance(node_id, str) and node_id:
            return node_id
    return None


class Supervisor:
    """Hosts workflows on this node: one actor per process, restarted when it crashes.

    Args:
        workflows: the workflows to host (each by one supervisor at a time).
        metrics_port: serve ``/metrics`` and ``/healthz`` on this port (0 picks a free one).
        metrics_host: the address to serve them on.
        registry: the Prometheus registry metrics go to (default: the global one).
        node_id: this node's identity for the role schedulers (default: the ``node_id`` of a
            workflow's shared role scheduler, else host, pid and a short random part).
        restart: how crashed actors are restarted.
        claim_interval: how often a role held by another node is tried again (seconds).
        stop_grace: how long `stop` waits for the steps in hand to finish (seconds); a
            step still running then is abandoned (logged with its run), and `stop`
            returns about half a second later.
    """

    def __init__(
        self,
        workflows: Iterable[Hosted],
        metrics_port: int | None = None,
        *,
        metrics_host: str = "127.0.0.1",
        registry: CollectorRegistry | None = None,
        node_id: str | None = None,
        restart: RestartPolicy | None = None,
        claim_interval: float = 0.5,
        stop_grace: float = 4.5,
    ) -> None:
        self.workflows = list(workflows)
        self._engines: list[Engine[Any, Any]] = [wf.engine for wf in self.workflows]
        names = [engine.name for engine in self._engines]
        if len(set(names)) != len(names):
            msg = f"a supervisor cannot host two workflows with the same name: {sorted(names)}"
            raise ValueError(msg)
        # The node's identity in its fleets: given, else the one its shared scheduler was made with.
        self.node_id = node_id or _scheduler_node_id(self._engines) or new_node_id()
        self.metrics_host = metrics_host
        self._requested_port = metrics_port
        self.registry = registry
        self.restart = restart or RestartPolicy()
        self.claim_interval = claim_interval
        if not stop_grace > 0:
            msg = f"stop_grace must be a positive number of seconds, got {stop_grace!r}"
            raise ValueError(msg)
        self.stop_grace = float(stop_grace)
        self._node: Node | None = None
        self._server: MetricsServer | None = None
        self._attached: list[Attachable] = []
        self._started_at: datetime | None = None
        self._ui: Any = None  # an actorflow.ui.UiServer while serve_ui's UI runs

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        """``async with Supervisor([...])``: started in a worker thread, the event loop goes on (FastAPI's lifespan)."""
        await self.start_async()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_async()

    async def start_async(self) -> None:
        """`start` from async code: the event loop is not blocked while the actors subscribe."""
        await asyncio.to_thread(self.start)

    async def stop_async(self) -> None:
        """`stop` from async code: the event loop is not blocked while the steps in hand finish."""
        await asyncio.to_thread(self.stop)

    @property
    def running(self) -> bool:
        """True between `start` and `stop`."""
        return self._node is not None

    @property
    def metrics_port(self) -> int | None:
        """The port ``/metrics`` is served on (the real one when 0 was asked for)."""
        return None if self._server is None else self._server.port

    def start(self) -> None:
        """Spawn every process actor; return once each has subscribed for its role."""
        if self._node is not None:
            return
        for engine in self._engines:
            if engine.host is not None and engine.host is not self:
                msg = f"workflow {engine.name!r} is already hosted by another Supervisor (or running); stop it first"
                raise ActorflowError(msg)
        metrics = metrics_for(self.registry)
        # Bound first: a node whose endpoint cannot be served does not start at all.
        self._server = self._bind(metrics.registry)
        try:
            self._attach()
            node = Node(self.node_id, metrics, self.restart)
            plans = [plan for engine in self._engines for plan in plan_workflow(engine)]
        except BaseException:
            if self._server is not None:
                self._server.stop()
                self._server = None
            raise
        for engine in self._engines:
            engine.bind(self, metrics)
        self._node = node
        self._started_at = datetime.now(UTC)
        node.supervisor = _SupervisorActor.start(node)
        node.scheduler = SchedulerActor.start(node, claim_interval=self.claim_interval)
        node.supervisor.tell(_Spawn(tuple(plans)))
        missing = node.wait_subscribed({p.role for p in plans}, _SUBSCRIBE_TIMEOUT)
        if missing:
            self.stop()
            msg = f"processes did not subscribe for their roles in time: {sorted(missing)}"
            raise ActorflowError(msg)
        # The node is a member of its fleets once start() returns (a failure is logged and retried).
        node.scheduler.ask(JoinFleets(), timeout=_SUBSCRIBE_TIMEOUT)
        if self._server is not None:
            self._server.start()

    def _bind(self, registry: CollectorRegistry) -> MetricsServer | None:
        """The metrics endpoint, bound (not serving yet) if a port was asked for; `ActorflowError` if it cannot be."""
        if self._requested_port is None:
            return None
        from actorflow.web import MetricsServer  # noqa: PLC0415 - only when serving

        try:
            return MetricsServer(registry, self.metrics_host, self._requested_port, self._health)
        except OSError as exc:
            msg = f"cannot serve metrics on {self.metrics_host}:{self._requested_port}: {exc.strerror or exc}"
            raise ActorflowError(msg) from exc

    def serve_ui(
        self, port: int = 0, *, host: str = "127.0.0.1", token: str | None = None, read_only: bool = False
    ) -> str:
        """Serve the web UI of this node's runs until `stop` (the ``ui`` extra); its URL.

        It shows the runs of the first hosted workflow's record store, draws the graphs of
        the workflows kept there and offers their callbacks, and lists this node's
        processes with their state and lag beside the fleet's nodes. Beyond loopback a
        ``token`` is required (see `actorflow.ui.security`).
        """
        from actorflow import ui  # noqa: PLC0415 - the ui extra
        from actorflow.admin import RunsAdmin  # noqa: PLC0415

        if self._node is None:
            msg = "start the supervisor before serving its UI"
            raise ActorflowError(msg)
        if self._ui is not None:
            msg = "this supervisor already serves its UI"
            raise ActorflowError(msg)
        if host not in ui.LOOPBACK and not token:
            msg = f"serving the UI on {host} (beyond this machine) needs a token"
            raise ValueError(msg)
        store = self._engines[0].record_store
        workflows = {wf.name: wf for wf in self.workflows if wf.engine.record_store is store}
        sources = ui.Sources(RunsAdmin(store), workflows=workflows, nodes=self.nodes, processes=self._process_views)
        try:
            sock = ui.bind(host, port)
        except OSError as exc:
            msg = f"cannot serve the UI on {host}:{port}: {exc.strerror or exc}"
            raise ActorflowError(msg) from exc
        server = ui.UiServer(ui.create_app(sources, read_only=read_only, token=token), sock)
        server.start()
        self._ui = server
        return f"http://{f'[{host}]' if ':' in host else host}:{server.port}/"

    def _process_views(self) -> list[dict[str, Any]]:
        """Each process of this node: its name, state and lag (seconds), for the UI."""
        registry = metrics_for(self.registry).registry
        views = []
        for key, state in sorted(self.states().items()):
            workflow, _, process = key.partition("/")
            labels = {"workflow_name": workflow, "process_name": process}
            lag = registry.get_sample_value("workflow_process_lag_seconds", labels)
            views.append({"name": key, "state": str(state), "lag": None if lag is None else round(lag, 3)})
        return views

    def add_schedule(self, engine: Engine[Any, Any], schedule: ScheduleSpec[Any]) -> None:
        """Start the process of a schedule registered on a hosted workflow (the `Host` protocol)."""
        node = self._node
        if node is None or node.supervisor is None:
            return
        node.supervisor.tell(_Spawn((plan_schedule(engine, schedule),)))

    def states(self) -> dict[str, ProcessState]:
        """Every hosted process's state, keyed ``<workflow>/<process name>``."""
        node = self._node
        return {} if node is None else node.states()

    def roles(self) -> dict[str, int]:
        """The roles this node holds now, with the term of each lease (empty when not running)."""
        node = self._node
        return {} if node is None else node.held()

    def nodes(self) -> list[NodeInfo]:
        """The live nodes of this node's fleets (by id), with the roles each holds.

        Read from the workflows' role schedulers that keep membership (the shared lease
        tables); with none of those, only this node, as it knows itself.
        """
        found: dict[str, NodeInfo] = {}
        seen: set[int] = set()
        for engine in self._engines:
            scheduler = engine.role_scheduler
            if isinstance(scheduler, Membership) and id(scheduler) not in seen:
                seen.add(id(scheduler))
                for info in scheduler.nodes():
                    known = found.get(info.node_id)
                    roles = info.roles if known is None else tuple(sorted({*known.roles, *info.roles}))
                    found[info.node_id] = dataclasses.replace(info, roles=roles)
        if not seen and self._node is not None:
            now = datetime.now(UTC)
            found[self.node_id] = NodeInfo(self.node_id, self._started_at or now, now, tuple(self.roles()))
        return [found[node_id] for node_id in sorted(found)]

    def _health(self) -> tuple[bool, dict[str, Any]]:
        states = self.states()
        failed = sorted(k for k, v in states.items() if v is ProcessState.FAILED)
        node = self._node
        trouble = None if node is None else node.scheduler_trouble(patience=_STARVED_PATIENCE)
        healthy = self.running and not failed and trouble is None
        return healthy, {
            "status": "ok" if healthy else "failing",
            "node_id": self.node_id,
            "failed": failed,
            "roles": trouble or "ok",
            "processes": {k: str(v) for k, v in states.items()},
        }

    def stop(self) -> None:
        """Stop every actor (processes first, then release roles) and join their threads.

        Returns within about 5 seconds; safe to call twice.
        """
        node = self._node
        if node is None:
            return
        deadline = time.monotonic() + self.stop_grace
        node.stopping = True
        try:
            self._stop_actors(node, deadline)
        finally:
            if self._server is not None:
                self._server.stop()
                self._server = None
            if self._ui is not None:
                self._ui.stop()
                self._ui = None
            for engine in self._engines:
                engine.unbind(self)
            self._node = None
        for thread in node.threads():
            thread.join(max(0.0, deadline + 0.4 - time.monotonic()))
        self._detach()

    def _attach(self) -> None:
        """Attach to every adapter that holds resources; a server that is away fails the start."""
        seen: set[int] = set()
        try:
            for engine in self._engines:
                for adapter in (
                    engine.event_streamer,
                    engine.record_store,
                    engine.role_scheduler,
                    engine.timeout_store,
                ):
                    if isinstance(adapter, Attachable) and id(adapter) not in seen:
                        seen.add(id(adapter))
                        adapter.attach()
                        self._attached.append(adapter)
        except BaseException:
            self._detach()
            raise

    def _detach(self) -> None:
        attached, self._attached = self._attached, []
        for adapter in attached:
            try:
                adapter.detach()
            except Exception:  # noqa: BLE001 - stopping goes on; the adapter logs its own state
                logger.exception("releasing %r failed", adapter)

    def _stop_actors(self, node: Node, deadline: float) -> None:
        supervisor, scheduler = node.supervisor, node.scheduler
        children: list[tuple[str, pykka.ActorRef[Any]]] = []
        if supervisor is not None:
            try:
                children = cast(
                    "list[tuple[str, pykka.ActorRef[Any]]]", supervisor.ask(_Children(), timeout=self.stop_grace)
                )
            except (pykka.ActorDeadError, pykka.Timeout):
                logger.exception("supervisor actor did not answer on stop")
        stopping = [(key, ref.stop(block=False)) for key, ref in children if ref.is_alive()]
        node.wake_all()  # after the stop messages: a tick cut short is followed by its actor's stop
        for key, future in stopping:
            try:
                future.get(timeout=max(0.0, deadline - time.monotonic()))
            except pykka.Timeout:
                # Its thread is a daemon: it does not keep the process alive. A write it makes
                # if it ever gets there is refused by fencing (its lease is released below).
                logger.error(
                    "%s did not stop within the %.1fs stop grace; abandoned while %s",
                    key,
                    self.stop_grace,
                    node.in_hand(key) or "busy",
                )
        # Roles are released only once no actor of this node works them any more.
        for ref in (scheduler, supervisor):
            if ref is not None and ref.is_alive():
                node.scheduler_wake.set()
                try:
                    ref.stop(block=True, timeout=max(0.1, deadline - time.monotonic()))
                except pykka.Timeout:
                    logger.error("a runtime actor did not stop in time")
