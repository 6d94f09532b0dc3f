"""Helpers for pipeline tests: start a request the way `iter orchestrate` does, and wait for it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from models.config import Settings
from models.project import Project
from models.request import RequestInput, RequestResult, RequestState
from tests.conftest import example_project
from workflows.request import RequestWorkflow


async def start(
    client: Client, settings: Settings, workspace: Path, project: Project | None = None
) -> WorkflowHandle[Any, RequestResult]:
    inp = RequestInput(
        project=project or example_project(), request_id="req_01", workspace=str(workspace), settings=settings
    )
    return await client.start_workflow(
        RequestWorkflow.run, inp, id=f"iter-calc-req_01-{uuid.uuid4().hex[:8]}", task_queue=settings.temporal.task_queue
    )


async def run_request(
    client: Client, settings: Settings, workspace: Path, project: Project | None = None
) -> RequestState:
    handle = await start(client, settings, workspace, project)
    return (await handle.result()).state


def steps_dir(state: Any) -> Path:
    """Where a request's (or session's) steps run: its own worktree, not the user's checkout."""
    assert state.sandbox is not None, "no worktree yet"
    return Path(state.sandbox.path)


async def wait_for(handle: WorkflowHandle[Any, Any], predicate: Any, timeout: float = 20.0) -> RequestState:
    """Poll the status query until ``predicate(state)`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        state = await handle.query(RequestWorkflow.status)
        if predicate(state):
            return state
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not reached; last state phase={state.phase} events={state.events[-3:]}")
        await asyncio.sleep(0.1)
