"""The web UI's ASGI application: runs list, run page, actions, workflows and their diagrams, nodes.

Pages are rendered on the server (Jinja2, every value escaped); a small script of the
package's own refreshes the runs table when "live" is ticked. Every store call runs in a
worker thread, so a slow database never blocks the event loop. Actions are plain HTML
forms posted with the CSRF field (see `security`); a read-only UI renders none and
refuses every POST.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from importlib.resources import files
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from actorflow._version import VERSION
from actorflow.admin import (
    ACTION_DONE,
    ACTIONS,
    RUN_STATE_NAMES,
    InvalidFilter,
    RunsAdmin,
    object_for_people,
    parse_filter,
)
from actorflow.capabilities import NodeInfo, RunCount
from actorflow.errors import ActorflowError, InvalidCursor, InvalidRunStateTransition, RecordNotFound
from actorflow.protocols import Order, RecordFilter
from actorflow.record import Record
from actorflow.runstate import RunState, check_run_state_transition

from .diagram import layout
from .security import CSRF_FIELD, Forbidden, SecurityMiddleware, checked_form

__all__ = ["Sources", "create_app"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_FILTER_KEYS = ("workflow", "status", "run_state", "foreign_id", "since", "until")


@dataclasses.dataclass(frozen=True)
class Sources:
    """What the UI reads and acts on.

    Attributes:
        admin: the runs of the store.
        workflows: the workflows whose code is known (``--app``, or a supervisor's), by
            name: their graphs are drawn and their callbacks offered.
        nodes: the fleet's live nodes, when the role scheduler keeps them.
        processes: this node's processes (name, state, lag...), when a supervisor serves the UI.
    """

    admin: RunsAdmin
    workflows: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    nodes: Callable[[], list[NodeInfo]] | None = None
    processes: Callable[[], list[dict[str, Any]]] | None = None


class _BadRequest(Exception):
    """A filter or form value that means nothing (400, nothing changed)."""


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("actorflow.ui", "templates"), autoescape=select_autoescape(default=True))
    env.filters["when"] = lambda value: value.isoformat(timespec="seconds") if value is not None else ""
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)
    return env


def create_app(sources: Sources, *, read_only: bool = False, token: str | None = None) -> Starlette:
    """The UI as an ASGI app (serve it with uvicorn: `actorflow.ui.serve`)."""
    ui = _Ui(sources, read_only=read_only)
    routes = [
        Route("/", ui.runs_page),
        Route("/runs/{run_id}", ui.run_page),
        Route("/runs/{run_id}/action", ui.run_action, methods=["POST"]),
        Route("/runs/{run_id}/callback", ui.run_callback, methods=["POST"]),
        Route("/bulk", ui.bulk, methods=["POST"]),
        Route("/workflows", ui.workflows_page),
        Route("/nodes", ui.nodes_page),
        Mount("/static", StaticFiles(directory=str(files("actorflow.ui") / "static")), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={Forbidden: ui.forbidden, HTTPException: ui.http_error})
    app.add_middleware(SecurityMiddleware, token=token)
    return app


class _Ui:
    """The pages and actions (see the module docstring)."""

    def __init__(self, sources: Sources, *, read_only: bool) -> None:
        self.sources = sources
        self.admin = sources.admin
        self.read_only = read_only
        self.env = _environment()

    def render(self, request: Request, name: str, context: dict[str, Any], http_status: int = 200) -> HTMLResponse:
        context = {
            **context,
            "csrf": request.state.csrf,
            "csrf_field": CSRF_FIELD,
            "read_only": self.read_only,
            "version": VERSION,
            "path": request.url.path,
        }
        return HTMLResponse(self.env.get_template(name).render(**context), status_code=http_status)

    def refuse(self, request: Request, http_status: int, message: str) -> HTMLResponse:
        return self.render(request, "error.html", {"message": message, "status_code": http_status}, http_status)

    async def _posted(self, request: Request) -> FormData:
        if self.read_only:
            msg = "this UI is read-only: it offers no action"
            raise Forbidden(msg)
        return await checked_form(request)

    # -- the runs list -------------------------------------------------------------------

    async def runs_page(self, request: Request) -> Response:
        """``/``: runs filtered and paged by cursor, their counts, the bulk-action form."""
        query = request.query_params
        try:
            workflow, record_filter = _filter_of(query)
            limit = _limit(query.get("limit"))
            order = _order(query.get("order"))
            after = query.get("after") or None
            page = await run_in_threadpool(
                self.admin.page, workflow, filter=record_filter, limit=limit, order=order, after=after
            )
            counts = await run_in_threadpool(self.admin.counts, workflow, filter=record_filter)
        except (_BadRequest, InvalidFilter, InvalidCursor) as exc:
            return self.refuse(request, 400, str(exc))
        kept = [(k, v) for k, v in query.multi_items() if k in (*_FILTER_KEYS, "order", "limit", "live") and v]
        every = await run_in_threadpool(self.admin.counts, "")
        context = {
            "runs": page.records,
            "counts": counts,
            "total": sum(c.count for c in counts),
            "next_url": None if page.next is None else "/?" + urlencode([*kept, ("after", page.next)]),
            "first_url": "/?" + urlencode(kept) if after else None,
            "query": query,
            "filters": [(key, value) for key, value in query.multi_items() if key in _FILTER_KEYS and value],
            "run_states": list(RUN_STATE_NAMES),
            "workflow_names": sorted({c.workflow_name for c in every}),
            "status_names": sorted({c.status_name for c in counts if c.status_name}),
            "actions": list(ACTIONS),
            "fragment_url": "/?" + urlencode([*query.multi_items(), ("fragment", "1")]),
            "refresh": query.get("live") == "1",
        }
        return self.render(request, "runs_table.html" if query.get("fragment") else "runs.html", context)

    # -- one run ---------------------------------------------------------------------------

    async def _run_context(self, run_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        record = await run_in_threadpool(self.admin.get, run_id)
        history = await run_in_threadpool(self.admin.history, run_id)
        return _run_context(self.sources, record, history, query)

    async def run_page(self, request: Request) -> Response:
        """``/runs/RUN_ID``: the run, its object, its timeline and what can be done to it."""
        run_id = request.path_params["run_id"]
        try:
            context = await self._run_context(run_id, request.query_params)
        except RecordNotFound:
            return self.refuse(request, 404, f"no run {run_id}")
        return self.render(request, "run.html", context)

    async def run_action(self, request: Request) -> Response:
        """POST ``/runs/RUN_ID/action``: pause, resume, cancel or delete the run (the engine's rules)."""
        run_id = request.path_params["run_id"]
        form = await self._posted(request)
        action = str(form.get("action", ""))
        if action not in ACTIONS:
            return self.refuse(request, 400, f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        reason = str(form.get("reason", ""))[:1000]
        try:
            await run_in_threadpool(self.admin.act, action, run_id, reason)
        except RecordNotFound:
            return self.refuse(request, 404, f"no run {run_id}")
        except InvalidRunStateTransition as exc:
            context = await self._run_context(run_id, {})
            return self.render(request, "run.html", {**context, "error": f"{action} refused: {exc}"}, 409)
        return RedirectResponse(f"/runs/{run_id}?" + urlencode({"done": ACTION_DONE[action]}), status_code=303)

    async def run_callback(self, request: Request) -> Response:
        """POST ``/runs/RUN_ID/callback``: hand a JSON payload to a callback of the run's status (code needed)."""
        run_id = request.path_params["run_id"]
        form = await self._posted(request)
        try:
            record = await run_in_threadpool(self.admin.get, run_id)
        except RecordNotFound:
            return self.refuse(request, 404, f"no run {run_id}")
        wf = self.sources.workflows.get(record.workflow_name)
        if wf is None:
            msg = f"the code of {record.workflow_name!r} is not loaded (start the UI with --app)"
            return self.refuse(request, 400, msg)
        status = _callback_status(wf, str(form.get("status", "")))
        payload = str(form.get("payload", ""))
        error = _payload_error(wf, status, form.get("status"), payload)
        if error is None:
            try:
                await run_in_threadpool(wf.callback, record.foreign_id, status, payload.encode())
            except ActorflowError as exc:
                error = f"callback refused: {exc}"
        if error is not None:
            context = await self._run_context(run_id, {})
            return self.render(request, "run.html", {**context, "error": error}, 400)
        return RedirectResponse(f"/runs/{run_id}?" + urlencode({"done": "called back"}), status_code=303)

    # -- bulk actions ------------------------------------------------------------------------

    async def bulk(self, request: Request) -> Response:
        """POST ``/bulk``: first a confirmation naming how many runs match, then the action on each."""
        form = await self._posted(request)
        action = str(form.get("action", ""))
        if action not in ACTIONS:
            return self.refuse(request, 400, f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        try:
            workflow, record_filter = _filter_of(form)
        except InvalidFilter as exc:
            return self.refuse(request, 400, str(exc))
        filters = [(key, str(value)) for key, value in form.multi_items() if key in _FILTER_KEYS and value]
        reason = str(form.get("reason", ""))[:1000]
        admin = self.admin
        matching = await run_in_threadpool(lambda: [r.run_id for r in admin.matching(workflow, filter=record_filter)])
        if form.get("confirm") != "yes":
            context = {"action": action, "count": len(matching), "filters": filters, "reason": reason}
            return self.render(request, "confirm.html", context)
        outcome = await run_in_threadpool(_apply, admin, action, matching, reason)
        context = {
            "action": action,
            "done": ACTION_DONE[action],
            "outcome": outcome,
            "filters": filters,
            "back": "/?" + urlencode(filters),
        }
        return self.render(request, "bulk_done.html", context)

    # -- workflows and nodes ----------------------------------------------------------------------

    async def workflows_page(self, request: Request) -> Response:
        """``/workflows``: each workflow's runs per status and run state, and its diagram when its code is known."""
        counts = await run_in_threadpool(self.admin.counts, "")
        names = sorted({c.workflow_name for c in counts} | set(self.sources.workflows))
        views = [_workflow_view(self.sources, name, counts) for name in names]
        return self.render(request, "workflows.html", {"workflows": views})

    async def nodes_page(self, request: Request) -> Response:
        """``/nodes``: the live nodes and the roles each holds (and this node's processes, from a supervisor)."""
        sources = self.sources
        nodes = None if sources.nodes is None else await run_in_threadpool(sources.nodes)
        processes = None if sources.processes is None else await run_in_threadpool(sources.processes)
        return self.render(request, "nodes.html", {"nodes": nodes, "processes": processes})

    async def forbidden(self, request: Request, exc: Exception) -> Response:
        """A refused POST (no or a forged CSRF token, another site's origin, a read-only UI): 403."""
        return self.refuse(request, 403, str(exc))

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's own errors (an unknown page, a method not allowed) as pages."""
        detail = getattr(exc, "detail", str(exc))
        code = getattr(exc, "status_code", 500)
        if not hasattr(request.state, "csrf"):
            return HTMLResponse(str(detail), status_code=code)
        return self.refuse(request, code, str(detail))


def _apply(admin: RunsAdmin, action: str, run_ids: list[str], reason: str) -> dict[str, int]:
    outcome = {"done": 0, "refused": 0, "gone": 0}
    for _, result in admin.act_each(action, run_ids, reason):
        if isinstance(result, InvalidRunStateTransition):
            outcome["refused"] += 1
        elif isinstance(result, RecordNotFound):
            outcome["gone"] += 1
        else:
            outcome["done"] += 1
    return outcome


def _payload_error(wf: Any, status: Any, given: Any, payload: str) -> str | None:
    if status is None:
        return f"{given!r} is not a status with a callback in {wf.name!r}"
    try:
        json.loads(payload)
    except ValueError as exc:
        return f"the payload is not JSON: {exc}"
    return None


def _order(raw: str | None) -> Order:
    if not raw or raw == "desc":
        return "desc"
    if raw == "asc":
        return "asc"
    msg = f"order {raw!r:.40} is neither asc nor desc"
    raise _BadRequest(msg)


def _limit(raw: str | None) -> int:
    if not raw:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        msg = f"limit must be a number from 1 to {MAX_LIMIT}, got {raw!r:.40}"
        raise _BadRequest(msg)
    return int(raw)


def _filter_of(values: Any) -> tuple[str, RecordFilter]:
    """The workflow and filter of a query string or form (the names of the runs list's filter form)."""
    record_filter = parse_filter(
        statuses=[str(v) for v in values.getlist("status")],
        run_states=[str(v) for v in values.getlist("run_state")],
        foreign_id_prefix=str(values.get("foreign_id") or ""),
        since=str(values.get("since") or ""),
        until=str(values.get("until") or ""),
    )
    return str(values.get("workflow") or ""), record_filter


def _allowed_actions(record: Record) -> list[str]:
    allowed = []
    for action, state in ACTIONS.items():
        try:
            check_run_state_transition(record.run_state, state)
        except InvalidRunStateTransition:
            continue
        allowed.append(action)
    return allowed


def _callback_status(wf: Any, text: str) -> Any:
    for member in wf.engine.config.status_type:
        if text == str(int(member)) and int(member) in wf.engine.config.callbacks:
            return member
    return None


def _run_context(sources: Sources, record: Record, history: list[Record], query: Mapping[str, str]) -> dict[str, Any]:
    wf = sources.workflows.get(record.workflow_name)
    callbacks = []  # only the run's own status's: a callback at another status would change nothing
    if wf is not None and record.status in wf.engine.config.callbacks and not record.run_state.stopped:
        callbacks = [(record.status, wf.engine.transitions.describe(record.status))]
    timeline = []
    previous: Record | None = None
    for version in history:
        timeline.append(
            {
                "record": version,
                "status_changed": previous is None or previous.status != version.status,
                "state_changed": previous is None or previous.run_state != version.run_state,
            }
        )
        previous = version
    return {
        "run": record,
        "object": object_for_people(record),
        "deleted": record.run_state is RunState.DATA_DELETED,
        "timeline": timeline,
        "allowed": _allowed_actions(record),
        "callbacks": callbacks,
        "done": query.get("done"),
    }


def _workflow_view(sources: Sources, name: str, counts: Sequence[RunCount]) -> dict[str, Any]:
    mine = [c for c in counts if c.workflow_name == name]
    wf = sources.workflows.get(name)
    diagram = mermaid = None
    if wf is not None:
        from actorflow.visualise import mermaid as to_mermaid  # noqa: PLC0415 - only with code

        graph = wf.engine.config.graph
        names = {status: wf.engine.transitions.describe(status) for status in graph.nodes()}
        at: dict[int, int] = {}
        for c in mine:
            if not c.run_state.finished:
                at[c.status] = at.get(c.status, 0) + c.count
        diagram = layout(graph, names, at)
        mermaid = to_mermaid(wf)
    states = sorted({c.run_state for c in mine})
    by_status: dict[tuple[int, str], dict[RunState, int]] = {}
    for c in mine:
        by_status.setdefault((c.status, c.status_name), {})[c.run_state] = c.count
    return {
        "name": name,
        "diagram": diagram,
        "mermaid": mermaid,
        "states": states,
        "rows": sorted(by_status.items()),
        "total": sum(c.count for c in mine),
    }
