"""`iter cancel SESSION` ends a session, whether it is running a step or paused: the workflow
closes CANCELED, the running step is stopped, no further iteration starts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus

from models.config import Settings
from tests import replies as r
from tests import session_replies as s
from tests.fake_llm import FakeModel
from tests.pipeline import steps_dir
from tests.test_session_control import iter_cli
from workflows.session import SessionWorkflow

CLOSE_TIMEOUT_S = 30


async def _closed_status(client: Client, wid: str) -> WorkflowExecutionStatus | None:
    handle = client.get_workflow_handle(wid)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLOSE_TIMEOUT_S
    while loop.time() < deadline:
        status = (await handle.describe()).status
        if status != WorkflowExecutionStatus.RUNNING:
            return status
        await asyncio.sleep(0.1)
    events = (await handle.query(SessionWorkflow.status)).events[-6:]
    raise AssertionError(f"still running {CLOSE_TIMEOUT_S} s after `iter cancel`; last events: {events}")


async def test_cancel_ends_a_session_that_is_running_a_step(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None, cli_env: dict[str, str]
) -> None:
    s.reviewers_pass(fake)
    fake.default(
        "session_plan",
        s.session_plan(r.run("s1", "touch started && sleep 30 && touch finished"), r.verify("s2", "test -f finished")),
    )
    spec = s.write_spec(workspace, "# Two\n- [ ] slow\n- [ ] next\n")
    inp = s.session_input(settings, workspace, spec)
    handle = await s.start_session(client, settings, inp)
    state = await s.wait_state(handle, lambda st: st.sandbox is not None and (steps_dir(st) / "started").exists())
    cancelled = await iter_cli(cli_env, workspace, "cancel", handle.id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert await _closed_status(client, handle.id) == WorkflowExecutionStatus.CANCELED
    await asyncio.sleep(1)
    assert not (steps_dir(state) / "finished").exists()  # the step was stopped, not waited for
    assert len(fake.calls("session_plan")) == 1  # no iteration 2
    shown = await iter_cli(cli_env, workspace, "status", handle.id)
    assert shown.returncode == 0 and "canceled" in shown.stdout.lower(), shown.stdout + shown.stderr
    again = await iter_cli(cli_env, workspace, "cancel", handle.id)
    assert again.returncode == 1 and "is not running" in again.stderr


async def test_cancel_ends_a_paused_session(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None, cli_env: dict[str, str]
) -> None:
    s.reviewers_pass(fake)
    fake.default("session_plan", s.append_plan("a.txt", "one\n", action="create"))
    spec = s.write_spec(workspace, "# One\n- [ ] never reached\n")
    inp = s.session_input(settings, workspace, spec)
    handle = await s.start_session(client, settings, inp, start_signal="pause")
    await s.wait_state(handle, lambda st: any(e.message == "paused" for e in st.events))
    cancelled = await iter_cli(cli_env, workspace, "cancel", handle.id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert await _closed_status(client, handle.id) == WorkflowExecutionStatus.CANCELED
    assert fake.calls("session_plan") == [] and not (workspace / "a.txt").exists()
