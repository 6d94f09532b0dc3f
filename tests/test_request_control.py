"""Steering a running request: pause and resume at phase boundaries, guidance, cancel."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from models.config import Settings
from tests import replies as r
from tests.fake_llm import FakeModel
from tests.pipeline import start, steps_dir, wait_for
from workflows.request import RequestWorkflow

pytestmark = pytest.mark.usefixtures("worker")

PLAN = r.plan(r.write("s1", "notes.txt", "hello\n"), r.verify("s2", "test -f notes.txt"))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def test_pause_holds_at_the_next_phase_and_resume_goes_on(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.token_delay_s = 0.02  # the coder streams for about a second
    fake.script("plan", PLAN)
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())
    handle = await start(client, settings, workspace)
    await wait_for(handle, lambda s: s.phase == "stream")

    await handle.signal(RequestWorkflow.pause)
    state = await wait_for(handle, lambda s: any(e.message == "paused" for e in s.events))
    await asyncio.sleep(1.0)

    assert state.paused
    assert fake.calls("safety_review") == []  # nothing after the boundary ran
    assert not (workspace / "notes.txt").exists()
    await handle.signal(RequestWorkflow.resume)
    result = await handle.result()
    assert result.state.outcome == "passed"
    assert [e.message for e in result.state.events if e.message in ("paused", "resumed")] == ["paused", "resumed"]


async def test_message_reaches_the_next_model_call(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.token_delay_s = 0.02
    fake.script("plan", PLAN)
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())
    handle = await start(client, settings, workspace)
    await wait_for(handle, lambda s: s.phase == "stream")

    await handle.signal(RequestWorkflow.message, "use snake_case for every new name")
    result = await handle.result()

    assert result.state.outcome == "passed"
    review_prompt = fake.calls("safety_review")[0]["messages"][1]["content"]
    assert "use snake_case for every new name" in review_prompt
    assert "use snake_case" not in fake.calls("post_review")[0]["messages"][1]["content"]  # delivered once


async def test_cancel_stops_the_running_step_and_its_processes(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    slow = r.plan(r.run("s1", "echo $$ > pid.txt; sleep 60; echo late > after.txt"), r.verify("s2", "true"))
    fake.script("plan", slow)
    fake.script("safety_review", r.safety_pass())
    handle = await start(client, settings, workspace)
    ws = steps_dir(await wait_for(handle, lambda s: s.phase == "execute"))
    for _ in range(50):
        if (ws / "pid.txt").exists() and (ws / "pid.txt").read_text().strip():
            break
        await asyncio.sleep(0.1)
    pid = int((ws / "pid.txt").read_text())
    assert pid_alive(pid)

    await handle.cancel()
    for _ in range(100):
        if (await handle.describe()).status == WorkflowExecutionStatus.CANCELED:
            break
        await asyncio.sleep(0.1)

    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    for _ in range(50):
        if not pid_alive(pid):
            break
        await asyncio.sleep(0.1)
    assert not pid_alive(pid)
    assert not (workspace / "after.txt").exists() and not (ws / "after.txt").exists()
    state = await handle.query(RequestWorkflow.status)
    assert state.outcome == "cancelled"
