"""Scripted session answers and helpers that start a session the way `iter build` does."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from cli.project_store import scope
from models.config import Settings
from models.project import session_workflow_id
from models.session import SessionState
from models.session_io import SessionInput
from tests import replies as r
from tests.fake_llm import FakeModel
from workflows.session import SessionWorkflow

SPEC = """# Greeting

Build greetings.

## Tasks
- [ ] Create greet.txt
- [ ] Add a farewell
- [ ] Write the notes file
"""


def session_plan(*steps: dict[str, Any], summary: str = "work on the task", **ops: Any) -> dict[str, Any]:
    return {"summary": summary, "steps": list(steps), **ops}


def append_plan(path: str, text: str, task_id: str | None = None, action: str = "append", **ops: Any) -> dict[str, Any]:
    """One file step and a verify that the line is there: the unit of work of most tests."""
    plan = session_plan(
        r.write("s1", path, text, action),
        r.verify("s2", f"grep -q {text.strip()!r} {path}"),
        summary=f"append {text.strip()} to {path}",
        **ops,
    )
    if task_id is not None:
        plan["task_id"] = task_id
    return plan


def reviewers_pass(fake: FakeModel) -> None:
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())


def write_spec(workspace: Path, text: str = SPEC, name: str = "specs/SPEC.md") -> str:
    path = workspace / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return name


def session_input(
    settings: Settings, workspace: Path, spec: str = "specs/SPEC.md", name: str = "", **over: Any
) -> SessionInput:
    setting_over: dict[str, Any] = {k: over.pop(k) for k in ("iterations", "auto_commit") if k in over}
    return SessionInput(
        name=name or f"s-{uuid.uuid4().hex[:8]}",
        workspace=str(workspace),
        spec_path=spec,
        spec_text=(workspace / spec).read_text() if (workspace / spec).exists() else "",
        settings=settings.model_copy(update=setting_over),
        **over,
    )


async def start_session(
    client: Client, settings: Settings, inp: SessionInput, **start: Any
) -> WorkflowHandle[Any, SessionState]:
    """Start it under the id `iter build` gives it; ``start``: ``start_signal`` and the like, e.g. a
    session that waits paused before its first iteration."""
    return await client.start_workflow(
        SessionWorkflow.run, inp,
        id=session_workflow_id(inp.name, scope(Path(inp.workspace))),
        task_queue=settings.temporal.task_queue,
        **start,
    )


async def run_session(client: Client, settings: Settings, inp: SessionInput, timeout: float = 30) -> SessionState:
    handle = await start_session(client, settings, inp)
    try:
        return await asyncio.wait_for(asyncio.shield(handle.result()), timeout)
    except TimeoutError:
        state = await handle.query(SessionWorkflow.status)
        await handle.terminate("test timed out")
        lines = "\n".join(f"{e.iteration} {e.phase}: {e.message}" for e in state.events[-12:])
        raise AssertionError(f"session did not end in {timeout} s; last events:\n{lines}") from None


async def wait_state(handle: WorkflowHandle[Any, Any], predicate: Any, timeout: float = 30.0) -> SessionState:
    """Poll the status query until ``predicate(state)`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        state = await handle.query(SessionWorkflow.status)
        if predicate(state):
            return state
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached; phase={state.phase} events={state.events[-5:]}")
        await asyncio.sleep(0.05)


def git_log(workspace: Path) -> list[str]:
    import subprocess

    out = subprocess.run(["git", "log", "--format=%s"], cwd=workspace, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()
