"""After an upgrade: workflows of an older version can no longer be replayed by today's worker.
`iter status` and `iter history` still show them (from the history, saying so), and `iter build`
never discards a session whose state it cannot read. The "other version" here is today's code
with one unguarded change, served by a worker of its own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowExecutionStatus

import worker as worker_module
from models.config import Settings
from models.request import RequestInput, RequestResult
from models.session import SessionState
from models.session_io import SessionInput
from tests import replies as r
from tests import session_replies as s
from tests.cli import iter_cmd
from tests.fake_llm import FakeModel
from tests.pipeline import start
from workflows.request import RequestWorkflow
from workflows.session import SessionWorkflow


@workflow.defn(name="RequestWorkflow", sandboxed=False)
class ChangedRequestWorkflow(RequestWorkflow):
    @workflow.run
    async def run(self, inp: RequestInput) -> RequestResult:
        await workflow.sleep(0.01)  # the unguarded change
        return await super().run(inp)


@workflow.defn(name="SessionWorkflow", sandboxed=False)
class ChangedSessionWorkflow(SessionWorkflow):
    @workflow.run
    async def run(self, inp: SessionInput) -> SessionState:
        await workflow.sleep(0.01)  # the unguarded change
        return await super().run(inp)


@asynccontextmanager
async def newer_worker(client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    monkeypatch.setattr(worker_module, "WORKFLOWS", [ChangedRequestWorkflow, ChangedSessionWorkflow])
    async with worker_module.build_worker(client, settings):
        yield


async def test_status_and_history_of_a_closed_request_of_an_older_version(
    client: Client,
    settings: Settings,
    workspace: Path,
    fake: FakeModel,
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake.default("plan", r.plan(r.write("s1", "notes.txt", "hi\n"), r.verify("s2", "test -f notes.txt")))
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    async with worker_module.build_worker(client, settings):
        handle = await start(client, settings, workspace)
        assert (await handle.result()).state.outcome == "passed"
    async with newer_worker(client, settings, monkeypatch):
        shown = await asyncio.to_thread(iter_cmd, workspace, cli_env, "status", handle.id, "--json")
        history = await asyncio.to_thread(iter_cmd, workspace, cli_env, "history", handle.id)
    assert shown.returncode == 0, shown.stderr
    state = json.loads(shown.stdout)
    assert state["outcome"] == "passed" and state["workflow_status"] == "completed"
    assert state["read_from"].startswith("read from the history (the workflow's result)"), state["read_from"]
    assert history.returncode == 0, history.stderr
    assert "post_review → PASS" in history.stdout


async def test_build_never_discards_a_session_it_cannot_resume(
    client: Client,
    settings: Settings,
    workspace: Path,
    fake: FakeModel,
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s.reviewers_pass(fake)
    fake.default("session_plan", s.session_plan(r.run("s1", "sleep 60"), r.verify("s2", "true")))
    s.write_spec(workspace, "# Two\n- [ ] slow\n- [ ] later\n", "specs/old.md")
    build = ("build", "--spec", "specs/old.md", "--headless", "--quiet")
    async with worker_module.build_worker(client, settings):
        started = await asyncio.to_thread(iter_cmd, workspace, cli_env, *build, "--detach")
        assert started.returncode == 0, started.stderr
        wid = next(w for w in started.stdout.split() if w.startswith("(iter-session-")).strip("();")
        handle = client.get_workflow_handle(wid)
        await s.wait_state(handle, lambda st: st.phase == "execute")
        await handle.terminate("an upgrade went wrong")
    async with newer_worker(client, settings, monkeypatch):
        again = await asyncio.to_thread(iter_cmd, workspace, cli_env, *build)
    assert again.returncode == 1, again.stdout + again.stderr
    said = " ".join(again.stderr.split())
    assert "cannot read" in said and "nothing was discarded" in said and "--reset" in said, said
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED  # no new run started
