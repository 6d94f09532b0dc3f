"""`iter watch`'s full screen, driven by Textual's pilot against real workflows on the dev server
(the fake model server streaming): what it shows comes only through Temporal, and its keys steer
the workflow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import Client
from textual.pilot import Pilot
from textual.widgets import Log, Static

from cli.tui import LogScreen, WatchApp
from models.config import Settings
from tests import replies as r
from tests import session_replies as s
from tests.fake_llm import FakeModel
from tests.pipeline import start
from workflows.request import RequestWorkflow
from workflows.session import SessionWorkflow

pytestmark = pytest.mark.usefixtures("worker")

HELD_PLAN = r.plan(
    r.run("s1", "rm -rf build; echo cleaned"), r.write("s2", "notes.txt", "clean\n"), r.verify("s3", "test ! -d build")
)


async def until(pilot: Pilot[str], what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            app = pilot.app
            assert isinstance(app, WatchApp)
            raise AssertionError(
                f"{what}: not seen in {timeout} s; status {app.model.status_line()!r}, log {app.model.log[-8:]}"
            )
        await pilot.pause(0.05)


def text_of(app: WatchApp, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


def output_of(app: WatchApp) -> str:
    return "\n".join(app.query_one("#output", Log).lines)


async def test_desktop_view_streams_a_request_and_steers_it(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    (workspace / "build").mkdir()
    fake.script("plan", HELD_PLAN)
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    fake.token_delay_s = 0.002
    handle = await start(client, settings, workspace)
    app = WatchApp(client, handle.id)

    async with app.run_test(size=(130, 40)) as pilot:
        assert not app.compact and app.query_one("#sidebar").display
        # The status query can tell of the hold before the stream brings the verdict: wait for both.
        await until(pilot, "the held step", lambda: bool(app.model.waiting_holds()) and "safety" in app.model.verdicts)
        await pilot.pause(0.1)
        assert '"rm -rf build; echo cleaned"' in output_of(app)  # the coder's answer, streamed
        assert "⚠ 1 held" in text_of(app, "#status") and "phase review" in text_of(app, "#status")
        assert "held s1: WAITING" in text_of(app, "#review")
        assert "safety: HOLD (7/8 checks); 2. no destructive operations" in text_of(app, "#review")

        await pilot.press("p")  # pause
        await until(pilot, "paused", lambda: app.model.paused)
        assert (await handle.query(RequestWorkflow.status)).paused
        assert "PAUSED" in text_of(app, "#status")
        await pilot.press("p")  # resume
        await until(pilot, "resumed", lambda: not app.model.paused)

        await pilot.press("i")
        await pilot.press(*"keep it short")
        await pilot.press("enter")
        await until(pilot, "the message on the stream", lambda: "message queued: keep it short" in output_of(app))
        assert "keep it short" in (await handle.query(RequestWorkflow.status)).pending_messages
        await pilot.press("escape")

        await pilot.press("a")  # approve the held step
        await until(pilot, "the end", lambda: app.model.outcome == "passed", timeout=90)
        steps = text_of(app, "#tasks")
        assert "✓ s1 (command)" in steps and "✓ s3 (verify)" in steps, steps
        assert "│ cleaned" in output_of(app)  # the step's output line
        assert "passed" in text_of(app, "#status")

        await pilot.press("ctrl+l")
        await pilot.pause(0.2)
        assert isinstance(app.screen, LogScreen)
        assert any("verify verdict: PASS" in line for line in app.screen.query_one(Log).lines)
        await pilot.press("escape")
        await pilot.pause(0.1)
        await pilot.press("q")
    assert app.return_value == "passed"
    assert (await handle.result()).state.outcome == "passed"


async def test_compact_view_of_a_session_shows_tasks_and_cancels_it(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    spec = s.write_spec(workspace)
    s.reviewers_pass(fake)
    fake.script(
        "session_plan",
        s.append_plan(
            "greet.txt", "hello\n", task_id="1", action="create", notes=[{"type": "tip", "content": "be kind"}]
        ),
    )
    fake.default(
        "session_plan",
        s.session_plan(r.run("s1", "sleep 30"), r.verify("s2", "true"), summary="a long step", task_id="2"),
    )
    inp = s.session_input(settings, workspace, spec)
    handle = await s.start_session(client, settings, inp)
    app = WatchApp(client, handle.id)

    async with app.run_test(size=(80, 24)) as pilot:
        assert app.compact and not app.query_one("#sidebar").display
        await until(pilot, "a second iteration", lambda: app.model.iteration >= 2)
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        sidebar = app.query_one("#sidebar")
        assert sidebar.display and sidebar.has_class("overlay")
        await until(pilot, "task 1 done", lambda: "✓ #1" in text_of(app, "#tasks"))
        tasks = text_of(app, "#tasks")
        assert "#2 P2 Add a farewell" in tasks and "○ #3" in tasks, tasks
        assert "[tip] be kind" in text_of(app, "#notes")
        assert f"iteration {app.model.iteration}" in text_of(app, "#status") and app.model.iteration >= 2
        await until(pilot, "the long step", lambda: "▶ s1 (command) sleep 30" in output_of(app))

        await pilot.press("x")
        await pilot.pause(0.2)
        await pilot.press("y", "enter")
        await until(pilot, "cancelled", lambda: app.model.outcome == "cancelled", timeout=60)
        await pilot.press("q")
    state = await handle.query(SessionWorkflow.status)
    assert state.status == "cancelled"


async def test_watch_reads_nothing_from_the_local_disk(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    """The view opens on a finished request with an empty data dir and no workspace: all of it
    comes from the workflow's stream and queries."""
    fake.script("plan", r.plan(r.write("s1", "notes.txt", "x\n"), r.verify("s2", "test -f notes.txt")))
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    handle = await start(client, settings, workspace)
    await handle.result()
    await asyncio.to_thread(lambda: [p.unlink() for p in workspace.rglob("*") if p.is_file()])
    app = WatchApp(client, handle.id)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, "the end of the stream", lambda: "press q to leave" in output_of(app))
        assert "✓ s2 (verify)" in text_of(app, "#tasks")
        assert '"notes.txt"' in output_of(app)
        await pilot.press("q")
    assert app.return_value == "passed"
