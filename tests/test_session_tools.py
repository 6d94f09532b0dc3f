"""The session tools: Temporal updates whose validators refuse bad operations before anything
reaches history, used through the client and through `iter tool`, as people and models do."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

from models.config import Settings
from models.session import NewNote, NewSummary, NewTask, Task, TaskDependency, TaskPriorityChange, TaskStatusChange
from tests import session_replies as s
from tests.conftest import REPO
from tests.fake_llm import FakeModel
from workflows.session import SessionWorkflow

ITER = str(REPO / ".venv" / "bin" / "iter")


async def paused_session(
    client: Client, settings: Settings, workspace: Path, spec: str = ""
) -> WorkflowHandle[Any, Any]:
    """A session that waits before its first iteration, so the tools act on a quiet state."""
    path = s.write_spec(workspace, spec or "# Empty\n\nNo tasks yet.\n")
    inp = s.session_input(settings, workspace, path)
    return await s.start_session(client, settings, inp, start_signal="pause")


async def refused(handle: WorkflowHandle[Any, Any], update: Any, arg: Any = None) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await (handle.execute_update(update) if arg is None else handle.execute_update(update, arg))
    return str(info.value.cause)


async def test_updates_apply_and_validators_refuse_without_touching_history(
    client: Client, settings: Settings, workspace: Path, worker: None
) -> None:
    handle = await paused_session(client, settings, workspace)
    added = await handle.execute_update(
        SessionWorkflow.task_batch_add, [NewTask(content="a"), NewTask(content="b"), NewTask(content="c", priority=0)]
    )
    assert [t.id for t in added] == ["1", "2", "3"]
    one = await handle.execute_update(SessionWorkflow.task_add, NewTask(content="d", depends_on=["3"]))
    assert one.id == "4" and one.depends_on == ["3"]
    assert "#9, which does not exist" in await refused(
        handle, SessionWorkflow.task_add, NewTask(content="x", depends_on=["9"])
    )
    await handle.execute_update(SessionWorkflow.task_depends, TaskDependency(id="2", depends_on="1"))
    cycle = await refused(handle, SessionWorkflow.task_depends, TaskDependency(id="1", depends_on="2"))
    assert "would make a cycle (#1 -> #2 -> #1)" in cycle
    assert "no task #9" in await refused(handle, SessionWorkflow.task_priority, TaskPriorityChange(id="9", priority=1))
    assert "no task #9" in await refused(
        handle, SessionWorkflow.task_status, TaskStatusChange(id="9", status="blocked")
    )
    assert "4 task(s) not completed" in await refused(handle, SessionWorkflow.session_complete)
    await handle.execute_update(SessionWorkflow.task_priority, TaskPriorityChange(id="2", priority=4))
    note = await handle.execute_update(SessionWorkflow.note_add, NewNote(type="decision", content="use grep"))
    assert note.type == "decision"
    summary = await handle.execute_update(SessionWorkflow.iteration_summary, NewSummary(summary="set up by hand"))
    assert summary.iteration == 0 and summary.source == "user"
    assert (await handle.query(SessionWorkflow.task_next)).id == "3"  # type: ignore[union-attr]
    for task_id in ("3", "1"):
        await handle.execute_update(SessionWorkflow.task_status, TaskStatusChange(id=task_id, status="completed"))
    assert (await handle.query(SessionWorkflow.task_next)).id == "4"  # type: ignore[union-attr]
    assert [n.content for n in await handle.query(SessionWorkflow.note_list, "decision")] == ["use grep"]
    assert await handle.query(SessionWorkflow.note_list, "stuck") == []
    for task_id, status in (("2", "cancelled"), ("4", "blocked")):
        await handle.execute_update(SessionWorkflow.task_status, TaskStatusChange(id=task_id, status=status))
    assert "complete" in await handle.execute_update(SessionWorkflow.session_complete)
    state = await handle.result()  # a completed session ends even while paused
    assert state.status == "completed" and state.iteration == 0
    assert [(t.id, t.status, t.priority) for t in state.tasks] == [
        ("1", "completed", 2), ("2", "cancelled", 4), ("3", "completed", 0), ("4", "blocked", 2)
    ]  # fmt: skip
    accepted = [
        e
        async for e in handle.fetch_history_events()
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert len(accepted) == 11  # the six refusals left no trace in history


async def iter_tool(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a thread: the in-process worker shares this event loop and must keep serving."""
    return await asyncio.to_thread(
        subprocess.run, [ITER, "tool", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


async def test_iter_tool_commands_through_the_cli(
    client: Client, settings: Settings, workspace: Path, worker: None, cli_env: dict[str, str], fake: FakeModel
) -> None:
    handle = await paused_session(client, settings, workspace, "# S\n- [ ] first from the spec\n")
    name = (await handle.query(SessionWorkflow.status)).name
    add = await iter_tool(
        cli_env, workspace, "task-add", "--session", name, "--content", "x; rm -rf ~", "--priority", "0"
    )
    assert add.returncode == 0, add.stderr
    assert "#2 P0 x; rm -rf ~" in add.stdout
    batch = await iter_tool(cli_env, workspace, "task-batch-add", "--session", name, "third", "fourth", "--json")
    assert [t["id"] for t in json.loads(batch.stdout)] == ["3", "4"]
    dep = await iter_tool(cli_env, workspace, "task-depends", "--session", name, "--id", "3", "--on", "4")
    assert dep.returncode == 0, dep.stderr
    cycle = await iter_tool(cli_env, workspace, "task-depends", "--session", name, "--id", "4", "--on", "3")
    assert cycle.returncode == 1
    assert cycle.stderr.strip() == "error: #4 depending on #3 would make a cycle (#4 -> #3 -> #4)"
    bad = await iter_tool(cli_env, workspace, "task-status", "--session", name, "--id", "1", "--status", "finished")
    assert bad.returncode == 1 and "status" in bad.stderr and "Traceback" not in bad.stderr
    nxt = await iter_tool(cli_env, workspace, "task-next", "--session", name, "--json")
    assert json.loads(nxt.stdout)["content"] == "x; rm -rf ~"
    early = await iter_tool(cli_env, workspace, "session-complete", "--session", name)
    assert early.returncode == 1 and "session-complete refused: 4 task(s)" in early.stderr
    note = await iter_tool(
        cli_env, workspace, "note-add", "--session", name, "--type", "tip", "--content", "grep is enough"
    )
    assert note.returncode == 0, note.stderr
    listed = json.loads((await iter_tool(cli_env, workspace, "task-list", "--session", name, "--json")).stdout)
    assert [(t["id"], t["source"]) for t in listed] == [("1", "spec"), ("2", "user"), ("3", "user"), ("4", "user")]
    missing = await iter_tool(cli_env, workspace, "task-list", "--session", "no-such-session")
    assert missing.returncode == 1 and "iter build --name no-such-session" in missing.stderr
    await handle.terminate("test over")


def test_task_model_is_what_the_cli_prints() -> None:
    task = Task(id="1", seq=1, content="a")
    assert task.line() == "#1 [remaining] P2 a"
