"""The dashboard in a real headless Chromium, against a real request on the dev server (models
faked at the network edge): it shows the request as it runs, steers it with its buttons, and
keeps model output as text. Set ITER_DASHBOARD_SCREENSHOT=docs/dashboard.png to refresh the
screenshot kept in docs/."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from cli.project_store import scope
from models.config import Settings
from tests import browser
from tests import replies as r
from tests.conftest import git
from tests.dashboard import Dashboard, dashboard_env, running_dashboard
from tests.fake_llm import FakeModel
from tests.pipeline import start

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(bool(browser.missing()), reason=browser.missing() or "browser present"),
    pytest.mark.usefixtures("worker"),
]

UI_TIMEOUT_MS = 30_000  # a loaded 2-core machine; each wait says what it waited for


@pytest.fixture(scope="module")
def dash(temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    address = temporal_env.client.service_client.config.target_host
    env = dashboard_env(address, str(tmp_path_factory.mktemp("dash")))
    with running_dashboard(env, "--temporal-ui", "http://temporal-ui.example:8233") as running:
        yield running


@pytest_asyncio.fixture(scope="module")
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=browser.executable(), args=browser.CHROMIUM_ARGS, headless=True
        )
        yield launched
        await launched.close()


@pytest_asyncio.fixture
async def page(chromium: Any) -> AsyncIterator[Any]:
    context = await chromium.new_context(viewport={"width": 1400, "height": 1000})
    opened = await context.new_page()
    opened.errors = []
    opened.on("pageerror", lambda exc: opened.errors.append(str(exc)))
    opened.on("console", lambda msg: opened.errors.append(msg.text) if msg.type == "error" else None)
    yield opened
    await context.close()


async def text_of(page: Any, selector: str) -> str:
    return str(await page.locator(selector).text_content() or "")


async def test_a_running_request_is_shown_live_and_steered_from_the_page(
    dash: Dashboard, page: Any, client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    from playwright.async_api import expect

    fake.token_delay_s = 0.03
    fake.script(
        "plan",
        r.plan(
            r.write("s1", "src/calc/ops.py", "def multiply(a, b):\n    return a * b\n", action="append"),
            r.run("s2", "echo building; sleep 6; echo built"),
            r.verify("s3", "grep -q 'def multiply' src/calc/ops.py"),
            summary="Add multiply to calc.ops and check it",
        ),
    )
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass("multiply(3, 4) == 12"))
    handle = await start(client, settings, workspace)

    await page.goto(dash.base + "/")
    row = page.locator(f'#workflows tr[data-id="{handle.id}"]')
    await expect(row, "the list shows the new request").to_be_visible(timeout=UI_TIMEOUT_MS)
    await row.click()
    await expect(page.locator("#wf-status")).to_have_text("running", timeout=UI_TIMEOUT_MS)
    link = await page.locator("#wf-temporal").get_attribute("href")
    assert link == f"http://temporal-ui.example:8233/namespaces/default/workflows/{handle.id}"

    # Executing (s2 sleeps): the reviewed tree, the 8 checks passed, the usage so far.
    await expect(page.locator("#wf-phase")).to_have_text("execute", timeout=UI_TIMEOUT_MS)
    await expect(page.locator("#checks li .mark.ok")).to_have_count(8, timeout=UI_TIMEOUT_MS)
    await expect(page.locator("#tree li[data-step]")).to_have_count(3, timeout=UI_TIMEOUT_MS)
    # The live stream: the coder's tokens, then s2 started (marked running in the tree) and its first line.
    await expect(page.locator("#live")).to_contain_text('"summary": "Add multiply to calc.ops', timeout=UI_TIMEOUT_MS)
    await expect(page.locator('#tree li[data-step="s2"] .mark.run')).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(page.locator("#live")).to_contain_text("building", timeout=UI_TIMEOUT_MS)
    await expect(page.locator("#usage tbody tr")).to_have_count(3, timeout=UI_TIMEOUT_MS)  # plan, file, safety
    assert "Add multiply" in await text_of(page, "#wf-summary")
    shot = os.environ.get("ITER_DASHBOARD_SCREENSHOT")
    await page.screenshot(path=shot or str(workspace.parent / "dashboard.png"), full_page=True)

    await page.locator('#controls button[data-action="pause"]').click()
    await expect(page.locator("#notice")).to_contain_text("pause requested", timeout=UI_TIMEOUT_MS)
    await expect(page.locator("#wf-paused")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await page.locator("#message-text").fill("keep multiply next to add")
    await page.locator("#message-send").click()
    await expect(page.locator("#notice")).to_contain_text("message queued", timeout=UI_TIMEOUT_MS)
    # The pause holds at the boundary after the steps: the reviewer does not start until resumed.
    await expect(page.locator("#events")).to_contain_text("paused", timeout=UI_TIMEOUT_MS)
    assert fake.calls("post_review") == []
    await page.locator('#controls button[data-action="resume"]').click()
    await expect(page.locator("#wf-paused")).to_be_hidden(timeout=UI_TIMEOUT_MS)

    await expect(page.locator("#wf-outcome")).to_have_text("passed", timeout=UI_TIMEOUT_MS)
    await expect(page.locator("#wf-status")).to_have_text("completed", timeout=UI_TIMEOUT_MS)
    await expect(page.locator("#tree .mark.ok")).to_have_count(3)
    await expect(page.locator("#criteria li .mark.ok")).to_have_count(1)
    await expect(page.locator("#usage tbody tr")).to_have_count(4)  # the plan, its file, the two reviews
    assert "keep multiply next to add" in fake.calls("post_review")[0]["messages"][1]["content"]
    await page.locator('#tree li[data-step="s2"] summary').click()
    assert "built" in await text_of(page, '#tree li[data-step="s2"] pre')
    assert page.errors == [], page.errors


MARKUP = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


async def test_model_output_stays_text(
    dash: Dashboard, page: Any, client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    """Plans, step output and review evidence come from a model: whatever markup they hold is shown, never run."""
    from playwright.async_api import expect

    fake.script(
        "plan",
        r.plan(
            r.run("s1", "printf '%s\\n' '<img src=x onerror=window.__pwned=3>'"),
            r.verify("s2", "true"),
            summary=MARKUP,
        ),
    )
    fake.script("safety_review", r.safety_pass())
    passed = r.post_pass(MARKUP)
    passed["criteria"][0]["evidence"] = '<a href="javascript:window.__pwned=4">proof</a>'
    fake.script("post_review", passed)
    handle = await start(client, settings, workspace)
    await handle.result()

    await page.goto(f"{dash.base}/#{handle.id}")
    await expect(page.locator("#wf-outcome")).to_have_text("passed", timeout=UI_TIMEOUT_MS)
    await page.locator('#tree li[data-step="s1"] summary').click()
    assert await text_of(page, "#wf-summary") == MARKUP
    assert "<img src=x onerror=window.__pwned=3>" in await text_of(page, '#tree li[data-step="s1"] pre')
    assert MARKUP in await text_of(page, "#criteria")
    assert await page.locator("#detail img, #detail script, #criteria a").count() == 0
    assert await page.evaluate("window.__pwned") is None
    assert page.errors == [], page.errors


async def test_a_held_step_is_approved_from_the_page(
    dash: Dashboard, page: Any, client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    from playwright.async_api import expect

    # A build/ folder in git: the request's worktree has it too, and its deletion lands when it passes.
    (workspace / "build").mkdir()
    (workspace / "build" / "out.o").write_text("x")
    git(workspace, "add", "-A")
    git(workspace, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "build")
    # `rm -rf build`: risky but plausibly legitimate, so the policy holds it for a person.
    fake.script("plan", r.plan(r.run("s1", "rm -rf build"), r.verify("s2", "test ! -d build")))
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    handle = await start(client, settings, workspace)

    await page.goto(f"{dash.base}/#{handle.id}")
    held = page.locator('#held li[data-held="s1"]')
    await expect(held, "the held step with its reason").to_contain_text("rm -rf build", timeout=UI_TIMEOUT_MS)
    await held.locator("button.danger").click()  # deny needs a reason: refused, still waiting
    await expect(page.locator("#notice.bad")).to_contain_text("reason", timeout=UI_TIMEOUT_MS)
    assert (workspace / "build" / "out.o").exists()
    await held.locator("button.approve").click()
    await expect(page.locator("#notice")).to_contain_text("approved", timeout=UI_TIMEOUT_MS)
    await expect(page.locator("#held-section")).to_be_hidden(timeout=UI_TIMEOUT_MS)
    await expect(page.locator("#wf-outcome")).to_have_text("passed", timeout=UI_TIMEOUT_MS)
    result = await handle.result()  # the change lands in the checkout once the request passed
    assert not (workspace / "build" / "out.o").exists(), result.state.landing
    assert page.errors == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"], (
        "only the refused denial's answer"
    )


async def test_a_session_shows_its_tasks_and_resumes_from_the_page(
    dash: Dashboard, page: Any, client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    from playwright.async_api import expect

    from models.project import session_workflow_id
    from tests import session_replies as s
    from workflows.session import SessionWorkflow

    s.reviewers_pass(fake)
    # One iteration does both tasks (the plan completes #2 and the session): a short session.
    fake.script(
        "session_plan",
        {
            **s.append_plan("a.txt", "one two\n", action="create"),
            "task_updates": [{"id": "1", "status": "completed"}, {"id": "2", "status": "completed"}],
            "session_complete": True,
        },
    )
    spec = s.write_spec(workspace, "# Two\n- [ ] write one\n- [ ] write two\n")
    inp = s.session_input(settings, workspace, spec)
    wid = session_workflow_id(inp.name, scope(Path(inp.workspace)))
    handle = await client.start_workflow(
        SessionWorkflow.run, inp, id=wid, task_queue=settings.temporal.task_queue, start_signal="pause"
    )

    await page.goto(dash.base + "/")
    await page.locator('#filters button[data-kind="session"]').click()
    row = page.locator(f'#workflows tr[data-id="{wid}"]')
    await expect(row, "the sessions filter lists the session").to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(page.locator('#workflows tr[data-id^="iter-calc-req_01"]')).to_have_count(0)
    await row.click()
    await expect(page.locator("#wf-kind")).to_have_text("session", timeout=UI_TIMEOUT_MS)
    await expect(page.locator("#wf-paused")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(page.locator("#tasks li")).to_have_count(2, timeout=UI_TIMEOUT_MS)
    assert "write one" in await text_of(page, "#tasks")
    await expect(page.locator("#tree")).to_be_hidden()  # a request's sections stay out of a session's page

    await page.locator('#controls button[data-action="resume"]').click()
    await expect(page.locator("#wf-outcome")).to_have_text("completed", timeout=UI_TIMEOUT_MS)
    await expect(page.locator("#tasks li .mark.ok")).to_have_count(2, timeout=UI_TIMEOUT_MS)
    assert (await handle.result()).status == "completed"
    assert page.errors == [], page.errors
