"""`iter dashboard` over HTTP: who may reach it, what it serves, and the actions it takes against a
real workflow on the dev server (the browser itself is in test_dashboard_browser.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from models.config import Settings
from tests import replies as r
from tests.cli import iter_cmd
from tests.dashboard import Dashboard, dashboard_env, running_dashboard
from tests.fake_llm import FakeModel
from tests.pipeline import start, wait_for
from workflows.request import RequestWorkflow

PLAN = r.plan(r.write("s1", "notes.txt", "hello\n"), r.verify("s2", "test -f notes.txt"))


@pytest.fixture(scope="module")
def env(temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return dashboard_env(temporal_env.client.service_client.config.target_host, str(tmp_path_factory.mktemp("dash")))


@pytest.fixture(scope="module")
def loopback(env: dict[str, str]) -> Iterator[Dashboard]:
    with running_dashboard(env) as dash:
        yield dash


@pytest.fixture(scope="module")
def exposed(env: dict[str, str]) -> Iterator[Dashboard]:
    with running_dashboard(env, "--host", "0.0.0.0") as dash:
        yield dash


def post(dash: Dashboard, path: str, body: object, **headers: str) -> httpx.Response:
    return httpx.post(
        dash.base + path,
        content=json.dumps(body),
        headers={"Content-Type": "application/json", "Origin": dash.base, **headers},
        timeout=30,
    )


# --- who may reach it ------------------------------------------------------------------------------


def test_loopback_serves_the_page_with_a_strict_content_policy(loopback: Dashboard) -> None:
    assert loopback.token is None and loopback.url.startswith("http://127.0.0.1:")
    page = httpx.get(loopback.base + "/", timeout=30)
    assert page.status_code == 200 and '<script src="/static/dashboard.js"' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    assert httpx.get(loopback.base + "/static/dashboard.js", timeout=30).status_code == 200


def test_loopback_refuses_a_foreign_host_name(loopback: Dashboard) -> None:
    """A web page whose DNS name was rebound to 127.0.0.1 sends its own name as Host."""
    answer = httpx.get(loopback.base + "/api/workflows", headers={"Host": "evil.example:80"}, timeout=30)
    assert answer.status_code == 403 and "loopback" in answer.text


def test_actions_come_only_from_the_dashboards_own_page(loopback: Dashboard) -> None:
    path = "/api/workflows/iter-nothing-req_01/pause"
    assert post(loopback, path, {}, Origin="http://evil.example").status_code == 403
    no_origin = httpx.post(loopback.base + path, content="{}", headers={"Content-Type": "application/json"}, timeout=30)
    assert no_origin.status_code == 403
    form = httpx.post(
        loopback.base + path, data={"a": "b"}, headers={"Origin": loopback.base}, timeout=30
    )  # what a cross-site <form> could send
    assert form.status_code == 415
    assert httpx.get(loopback.base + path, timeout=30).status_code == 405  # never by GET
    assert post(loopback, path, {}).status_code == 404  # the checks passed: there is no such workflow


def test_any_other_bind_requires_the_printed_token(exposed: Dashboard) -> None:
    assert exposed.token and len(exposed.token) >= 24 and "?token=" in exposed.url
    base = exposed.base
    for path in ("/", "/api/workflows", "/api/workflows/iter-x-req_01/events", "/static/dashboard.js"):
        assert httpx.get(base + path, timeout=30).status_code == 401, path
        wrong = httpx.get(base + path, headers={"Authorization": "Bearer " + "x" * 32}, timeout=30)
        assert wrong.status_code == 401, path
    assert post(exposed, "/api/workflows/iter-x-req_01/pause", {}).status_code == 401
    bearer = {"Authorization": f"Bearer {exposed.token}"}
    assert httpx.get(base + "/api/workflows", headers=bearer, timeout=30).status_code == 200

    with httpx.Client(base_url=base, timeout=30, follow_redirects=True) as browser:
        first = browser.get(f"/?token={exposed.token}")  # the printed URL: the token moves into a cookie
        assert first.status_code == 200 and first.url.query == b""
        assert first.history[0].status_code == 303
        cookie = first.history[0].headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert browser.get("/api/workflows").status_code == 200
        refused = browser.post("/api/workflows/iter-x-req_01/pause", json={}, headers={"Origin": "http://evil.example"})
        assert refused.status_code == 403  # the token alone is not enough for an action
        assert browser.post("/api/workflows/iter-x-req_01/pause", json={}, headers={"Origin": base}).status_code == 404


def test_a_bad_token_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    short = iter_cmd(tmp_path, env, "dashboard", "--token", "abc")
    assert short.returncode == 1 and "16 to 256" in short.stderr and "Traceback" not in short.stderr


# --- what it serves and does, against a real workflow ----------------------------------------------


@pytest.mark.usefixtures("worker")
async def test_list_detail_and_actions_on_a_running_request(
    loopback: Dashboard, client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.token_delay_s = 0.02
    fake.script("plan", PLAN)
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())
    handle = await start(client, settings, workspace)
    await wait_for(handle, lambda s: s.phase == "stream")
    async with httpx.AsyncClient(base_url=loopback.base, timeout=30) as http:
        rows = (await http.get("/api/workflows")).json()
        row = next(x for x in rows if x["workflow_id"] == handle.id)
        assert row["kind"] == "request" and row["status"] == "running" and row["item"] == "req_01"
        assert row["temporal_url"].endswith(f"/namespaces/default/workflows/{handle.id}")
        detail = (await http.get(f"/api/workflows/{handle.id}")).json()
        assert detail["state"]["request_id"] == "req_01" and len(detail["points"]) == 8

        headers = {"Origin": loopback.base}
        assert (await http.post(f"/api/workflows/{handle.id}/pause", json={}, headers=headers)).status_code == 200
        await wait_for(handle, lambda s: s.paused)
        empty = await http.post(f"/api/workflows/{handle.id}/message", json={"text": "  "}, headers=headers)
        assert empty.status_code == 400 and empty.json()["error"] == "the message is empty"
        sent = await http.post(f"/api/workflows/{handle.id}/message", json={"text": "prefer pathlib"}, headers=headers)
        assert sent.status_code == 200
        stop = await http.post(f"/api/workflows/{handle.id}/stop", json={}, headers=headers)
        assert stop.status_code == 400 and "only a session" in stop.json()["error"]
        assert (await http.post(f"/api/workflows/{handle.id}/resume", json={}, headers=headers)).status_code == 200
        result = await handle.result()
        assert result.state.outcome == "passed"
        assert "prefer pathlib" in fake.calls("safety_review")[0]["messages"][1]["content"]
        late = await http.post(f"/api/workflows/{handle.id}/pause", json={}, headers=headers)
        assert late.status_code == 409 and "completed" in late.json()["error"]
        assert (await handle.query(RequestWorkflow.status)).outcome == "passed"


async def read_feed(http: httpx.AsyncClient, path: str, **headers: str) -> list[tuple[str, str, dict[str, object]]]:
    """(event, id, data) of every message, until the server ends the feed."""
    events: list[tuple[str, str, dict[str, object]]] = []
    async with http.stream("GET", path, headers=headers) as feed:
        assert feed.headers["content-type"].startswith("text/event-stream")
        name, ident = "", ""
        async for line in feed.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("id: "):
                ident = line[4:]
            elif line.startswith("data: "):
                events.append((name, ident, json.loads(line[6:])))
                name, ident = "", ""
    return events


@pytest.mark.usefixtures("worker")
async def test_the_feed_sends_state_and_the_stream_until_the_request_ends_and_resumes(
    loopback: Dashboard, client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.script("plan", PLAN)
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())
    handle = await start(client, settings, workspace)
    path = f"/api/workflows/{handle.id}/events"
    async with httpx.AsyncClient(base_url=loopback.base, timeout=60) as http:
        events = await read_feed(http, path)
        kinds = [k for k, _, _ in events]
        assert kinds[-1] == "end" and events[-1][2]["status"] == "completed", kinds
        last_state = [d for k, _, d in events if k == "state"][-1]
        assert last_state["state"]["outcome"] == "passed", last_state
        live = [(int(i), d) for k, i, d in events if k == "live"]
        assert [o for o, _ in live] == sorted(o for o, _ in live), "the stream in order"
        live_kinds = [d["kind"] for _, d in live]
        for kind in ("phase", "model_start", "tokens", "step_start", "step_end", "verdict", "done"):
            assert kind in live_kinds, (kind, live_kinds)
        tokens = "".join(str(d["text"]) for _, d in live if d["kind"] == "tokens" and d["role"] == "coder")
        assert '"summary": "implement the request"' in tokens

        # A reconnecting EventSource sends the last id it saw: the feed goes on after it, nothing twice.
        middle = live[len(live) // 2][0]
        resumed = await read_feed(http, path, **{"Last-Event-ID": str(middle)})
        offsets = [int(i) for k, i, _ in resumed if k == "live"]
        assert offsets == [o for o, _ in live if o > middle]
