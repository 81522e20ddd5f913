"""The web UI over HTTP: pages, actions, and every refusal (token, CSRF, origin, read-only, bad input).

In this process, through starlette's TestClient, on a SQLite file that the workflow of
`tests.ui.flow` writes to. A refused request must change nothing: each case compares the
run's stored history before and after.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra")

from starlette.testclient import TestClient

import actorflow as af
from actorflow.adapters.sqlite import SqliteEventStreamer, SqliteRecordStore, SqliteRoleScheduler
from actorflow.admin import RunsAdmin
from actorflow.ui import Sources, create_app
from tests.model import Order, Status
from tests.ui import flow

pytestmark = pytest.mark.timeout(60)

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def wf(tmp_path: Path, opened) -> af.Workflow[Order, Status]:
    wf = flow.build(str(tmp_path / "ui.db"))
    for adapter in (wf.event_streamer, wf.record_store, wf.timeout_store):
        opened(adapter)
    return wf


@pytest.fixture
def client_for(wf, tmp_path, opened) -> Iterator[Callable[..., TestClient]]:
    """``client_for(read_only=..., token=..., code=True)``: a client of a UI over the workflow's file."""
    clients: list[TestClient] = []

    def make(*, read_only: bool = False, token: str | None = None, code: bool = True) -> TestClient:
        path = tmp_path / "ui.db"
        admin = RunsAdmin(opened(SqliteRecordStore(path)), events=opened(SqliteEventStreamer(path)))
        roles = opened(SqliteRoleScheduler(path))
        sources = Sources(admin, workflows={flow.NAME: wf} if code else {}, nodes=roles.nodes)
        client = TestClient(create_app(sources, read_only=read_only, token=token), base_url="http://ui.test")
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _csrf(client: TestClient, url: str = "/") -> str:
    found = CSRF.search(client.get(url).text)
    assert found, "the page has no form"
    return found[1]


def _history(wf: af.Workflow[Any, Any], run_id: str) -> list[af.Record]:
    return wf.record_store.snapshots(run_id)


def test_the_runs_list_shows_runs_with_counts_and_pages_by_cursor(wf, client_for):
    ids = [wf.trigger(f"o-{i}", Order(id=f"o-{i}")) for i in range(5)]
    client = client_for()
    page = client.get("/", params={"limit": "2"})
    assert page.status_code == 200
    shown = re.findall(r'data-run-id="([^"]+)"', page.text)
    assert shown == ids[::-1][:2]
    assert "5 matching" in page.text
    next_url = re.search(r'href="([^"]+)" id="next-page"', page.text)[1].replace("&amp;", "&")
    second = re.findall(r'data-run-id="([^"]+)"', client.get(next_url).text)
    assert second == ids[::-1][2:4]
    fragment = client.get("/", params={"limit": "2", "fragment": "1"})
    assert "<html" not in fragment.text
    assert 'data-run-id="' in fragment.text


def test_every_page_carries_the_security_headers(wf, client_for):
    run_id = wf.trigger("h-1", Order(id="h-1"))
    client = client_for()
    for url in ("/", f"/runs/{run_id}", "/workflows", "/nodes", "/no-such-page", "/static/ui.css"):
        response = client.get(url)
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["x-frame-options"] == "DENY"
    assert client.get("/no-such-page").status_code == 404


def test_values_are_escaped(wf, client_for):
    hostile = "<script>alert(1)</script>"
    run_id = wf.trigger(hostile, Order(id=hostile))
    client = client_for()
    for url in ("/", f"/runs/{run_id}"):
        text = client.get(url).text
        assert hostile not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_a_run_page_shows_object_timeline_and_the_actions_its_state_allows(wf, client_for):
    run_id = wf.trigger("r-1", Order(id="r-1", amount=7))
    wf.pause(run_id, "looking")
    page = client_for().get(f"/runs/{run_id}")
    assert page.status_code == 200
    assert '"amount": 7' in html.unescape(page.text)
    assert "looking" in page.text
    assert 'id="do-resume"' in page.text
    assert 'id="do-cancel"' in page.text
    assert 'id="do-pause"' not in page.text  # a paused run cannot be paused again
    assert page.text.count("<tr>") >= 3  # header and two versions


def test_pause_and_resume_through_forms(wf, client_for):
    run_id = wf.trigger("a-1", Order(id="a-1"))
    client = client_for()
    token = _csrf(client, f"/runs/{run_id}")
    done = client.post(f"/runs/{run_id}/action", data={"csrf": token, "action": "pause", "reason": "check it"})
    assert done.status_code == 200  # followed the 303 to the run page
    assert "paused." in done.text
    assert wf.record_store.lookup(run_id).run_state is af.RunState.PAUSED
    client.post(f"/runs/{run_id}/action", data={"csrf": token, "action": "resume"})
    assert wf.record_store.lookup(run_id).run_state is af.RunState.RUNNING


def test_a_refused_action_shows_the_engines_error_and_changes_nothing(wf, client_for):
    run_id = wf.trigger("x-1", Order(id="x-1"))
    wf.pause(run_id)
    wf.cancel(run_id)
    client = client_for()
    before = _history(wf, run_id)
    response = client.post(f"/runs/{run_id}/action", data={"csrf": _csrf(client), "action": "pause"})
    assert response.status_code == 409
    assert "pause refused: invalid RunState: from Cancelled | to Paused" in response.text
    assert _history(wf, run_id) == before


@pytest.mark.parametrize(
    ("data", "origin"),
    [
        ({"action": "pause"}, None),  # no CSRF field
        ({"action": "pause", "csrf": "forged-value-of-the-right-length-000000000000"}, None),
        ({"action": "pause", "csrf": "{token}"}, "http://evil.example"),  # the right token from another site
    ],
    ids=["missing", "forged", "cross-origin"],
)
def test_a_post_without_the_csrf_token_or_from_another_site_is_refused(wf, client_for, data, origin):
    run_id = wf.trigger("c-1", Order(id="c-1"))
    client = client_for()
    token = _csrf(client)
    before = _history(wf, run_id)
    form = {key: value.format(token=token) for key, value in data.items()}
    headers = {"Origin": origin} if origin else {}
    response = client.post(f"/runs/{run_id}/action", data=form, headers=headers)
    assert response.status_code == 403
    assert _history(wf, run_id) == before
    bulk = client.post("/bulk", data={**form, "confirm": "yes"}, headers=headers)
    assert bulk.status_code == 403
    assert _history(wf, run_id) == before


def test_a_token_is_required_on_every_request_once_set(wf, client_for):
    run_id = wf.trigger("t-1", Order(id="t-1"))
    client = client_for(token="s3cret")  # noqa: S106 - a test token
    for url in ("/", f"/runs/{run_id}", "/static/ui.css", "/workflows"):
        refused = client.get(url)
        assert refused.status_code == 401, url
        assert refused.headers["www-authenticate"].startswith("Basic")
    assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    basic = base64.b64encode(b"anyone:s3cret").decode()
    assert client.get("/", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    before = _history(wf, run_id)
    post = client.post(f"/runs/{run_id}/action", data={"action": "pause"})
    assert post.status_code == 401
    assert _history(wf, run_id) == before


def test_read_only_offers_no_action_and_refuses_every_post(wf, client_for):
    run_id = wf.trigger("ro-1", Order(id="ro-1"))
    client = client_for(read_only=True)
    for url in ("/", f"/runs/{run_id}"):
        text = client.get(url).text
        assert 'method="post"' not in text
        assert 'id="read-only"' in text
    client.get("/")  # the CSRF cookie
    cookie = client.cookies.get("actorflow_csrf")
    response = client.post(f"/runs/{run_id}/action", data={"action": "pause", "csrf": cookie})
    assert response.status_code == 403
    assert "read-only" in response.text
    assert wf.record_store.lookup(run_id).meta.version == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/?run_state=sleeping", "is not a run state"),
        ("/?since=yesterday", "is not an ISO 8601 time"),
        ("/?after=not-a-cursor", "not a page cursor"),
        ("/?limit=0", "limit must be a number"),
        ("/?order=sideways", "neither asc nor desc"),
    ],
)
def test_a_malformed_filter_is_a_clear_400(wf, client_for, url, message):
    wf.trigger("f-1", Order(id="f-1"))
    response = client_for().get(url)
    assert response.status_code == 400
    assert message in response.text


def test_an_unknown_run_or_action_is_refused_clearly(wf, client_for):
    run_id = wf.trigger("u-1", Order(id="u-1"))
    client = client_for()
    token = _csrf(client)
    assert client.get("/runs/no-such-run").status_code == 404
    assert client.post("/runs/no-such-run/action", data={"csrf": token, "action": "pause"}).status_code == 404
    response = client.post(f"/runs/{run_id}/action", data={"csrf": token, "action": "explode"})
    assert response.status_code == 400
    assert "unknown action" in response.text
    assert wf.record_store.lookup(run_id).meta.version == 1


def test_bulk_actions_confirm_how_many_runs_then_act_on_exactly_those(wf, client_for):
    held = [wf.trigger(f"bulk-{i}", Order(id=f"bulk-{i}")) for i in range(3)]
    other = wf.trigger("keep-1", Order(id="keep-1"))
    for run_id in held:
        wf.pause(run_id)
    client = client_for()
    form = {"csrf": _csrf(client), "action": "cancel", "foreign_id": "bulk-", "reason": "duplicates"}
    review = client.post("/bulk", data=form)
    assert review.status_code == 200
    assert "This will cancel <b>3</b> runs" in review.text
    assert {wf.record_store.lookup(r).run_state for r in held} == {af.RunState.PAUSED}  # nothing yet
    done = client.post("/bulk", data={**form, "confirm": "yes"})
    assert "3 cancelled; 0 refused by their state; 0 gone." in done.text
    assert {wf.record_store.lookup(r).run_state for r in held} == {af.RunState.CANCELLED}
    assert wf.record_store.lookup(other).run_state is af.RunState.INITIATED
    assert wf.record_store.lookup(held[0]).meta.run_state_reason == "duplicates"


def test_callback_with_a_json_payload_and_a_bad_one(wf, client_for):
    run_id = wf.trigger("cb-1", Order(id="cb-1"), start_at=Status.AWAITING)
    client = client_for()
    page = client.get(f"/runs/{run_id}")
    assert f'id="callback-{int(Status.AWAITING)}"' in page.text
    token = CSRF.search(page.text)[1]
    bad = client.post(f"/runs/{run_id}/callback", data={"csrf": token, "status": "5", "payload": "{nope"})
    assert bad.status_code == 400
    assert "the payload is not JSON" in bad.text
    assert wf.record_store.lookup(run_id).meta.version == 1
    ok = client.post(f"/runs/{run_id}/callback", data={"csrf": token, "status": "5", "payload": '{"note": "fine"}'})
    assert "called back." in ok.text
    assert wf.record_store.lookup(run_id).status == Status.APPROVED
    without_code = client_for(code=False)
    assert 'id="callback-' not in without_code.get(f"/runs/{run_id}").text


def test_the_workflows_page_draws_the_graph_with_live_counts(wf, client_for):
    for i in range(2):
        wf.trigger(f"w-{i}", Order(id=f"w-{i}"))
    text = client_for().get("/workflows").text
    assert text.count('class="status') == 6  # every status of the graph
    assert "2 unfinished" in text
    assert "stateDiagram-v2" in text  # the Mermaid source beside it
    plain = client_for(code=False).get("/workflows").text
    assert "<svg" not in plain
    assert "--app MODULE:ATTR" in plain


def test_the_nodes_page_lists_the_fleet(wf, client_for, tmp_path, opened):
    roles = opened(SqliteRoleScheduler(tmp_path / "ui.db", node_id="node-a"))
    client = client_for()
    assert 'id="no-nodes"' in client.get("/nodes").text
    roles.join("node-a", ["ui-orders-1-consumer-1-of-1"])
    roles.heartbeat("node-a")
    text = client.get("/nodes").text
    assert "node-a" in text
    roles.leave("node-a")


def test_a_run_at_a_status_outside_the_enum_is_shown_with_its_number(wf, client_for):
    """A stored status no member of the enum names is listed and shown as its number, with or without the code."""
    run_id = wf.trigger("odd-1", Order(id="odd-1"))
    record = wf.record_store.lookup(run_id)
    wf.record_store.store(wf.engine.transitions.next(record, run_state=af.RunState.RUNNING, status=77).record)
    for client in (client_for(), client_for(code=False)):
        listed = client.get("/")
        assert listed.status_code == 200
        assert re.findall(r'data-run-id="([^"]+)"', listed.text) == [run_id]
        assert "77" in listed.text
        page = client.get(f"/runs/{run_id}")
        assert page.status_code == 200
        assert "77" in page.text
        assert client.get("/workflows").status_code == 200
