"""``iter tool ...``: the session tools, for people and models alike. Each change is a Temporal
update whose validator refuses what cannot be applied (a missing task, a dependency cycle, an
early session-complete) before anything is written to history; reads are queries."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel, ValidationError
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from cli import project_store as store
from cli import runtime
from cli.output import console, fail, ok, print_json
from cli.session_view import print_notes, print_tasks, task_line
from models.project import session_workflow_id
from models.session import (
    NOTE_TYPES,
    TASK_STATUSES,
    IterationSummary,
    NewNote,
    NewSummary,
    NewTask,
    Note,
    Task,
    TaskDependency,
    TaskPriorityChange,
    TaskStatusChange,
)

tool_app = typer.Typer(help="Session tools: tasks, notes, summaries, session-complete.", no_args_is_help=True)
RPC_TIMEOUT = timedelta(seconds=30)
SESSION = typer.Option(..., "--session", "-s", help="The session name.")
JSON = typer.Option(False, "--json", help="Print JSON.")


def _contract(cls: type[BaseModel], **fields: Any) -> Any:
    try:
        return cls(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        fail(f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}")


async def _handle(session: str) -> WorkflowHandle[Any, Any]:
    cfg = runtime.settings()
    client = await runtime.client_for(cfg, start_server=False)
    await runtime.ensure_worker(client, cfg)
    return client.get_workflow_handle(session_workflow_id(session, store.scope(Path.cwd())))


def _rpc_failure(session: str, exc: RPCError) -> str:
    if exc.status == RPCStatusCode.NOT_FOUND or "already completed" in exc.message:
        return f"no running session {session!r}; start or resume it with `iter build --name {session}`"
    return f"session {session!r}: {exc.message}"


def _update(session: str, name: str, arg: Any, result_type: Any) -> Any:
    async def go() -> Any:
        handle = await _handle(session)
        try:
            if arg is None:
                return await handle.execute_update(name, result_type=result_type, rpc_timeout=RPC_TIMEOUT)
            return await handle.execute_update(name, arg, result_type=result_type, rpc_timeout=RPC_TIMEOUT)
        except WorkflowUpdateFailedError as exc:
            fail(getattr(exc.cause, "message", None) or str(exc.cause))
        except RPCError as exc:
            fail(_rpc_failure(session, exc))

    return runtime.run(go())


def _query(session: str, name: str, *args: Any, result_type: Any) -> Any:
    async def go() -> Any:
        handle = await _handle(session)
        try:
            return await handle.query(name, *args, result_type=result_type, rpc_timeout=RPC_TIMEOUT)
        except RPCError as exc:
            fail(_rpc_failure(session, exc))

    return runtime.run(go())


def _deps(depends: str) -> list[str]:
    return [d.strip().lstrip("#") for d in depends.split(",") if d.strip()]


@tool_app.command("task-add")
def task_add(
    session: str = SESSION,
    content: str = typer.Option(..., "--content", "-c", help="What the task is."),
    priority: int = typer.Option(2, "--priority", "-p", help="0 critical .. 4 backlog."),
    depends: str = typer.Option("", "--depends", "-d", help="Comma-separated ids it waits for."),
    status: str = typer.Option("remaining", "--status", help="/".join(TASK_STATUSES)),
    as_json: bool = JSON,
) -> None:
    """Add a task."""
    item = _contract(NewTask, content=content, priority=priority, depends_on=_deps(depends), status=status)
    task: Task = _update(session, "task_add", item, Task)
    print_json(task) if as_json else ok(f"Added {task_line(task.model_dump())}")


@tool_app.command("task-batch-add")
def task_batch_add(
    session: str = SESSION,
    contents: list[str] = typer.Argument(..., help="One argument per task."),
    priority: int = typer.Option(2, "--priority", "-p", help="0 critical .. 4 backlog, for all of them."),
    as_json: bool = JSON,
) -> None:
    """Add several tasks at once, in order."""
    items = [_contract(NewTask, content=c, priority=priority) for c in contents]
    tasks: list[Task] = _update(session, "task_batch_add", items, list[Task])
    if as_json:
        print_json([t.model_dump(mode="json") for t in tasks])
        return
    for task in tasks:
        ok(f"Added {task_line(task.model_dump())}")


def _change_task(session: str, update: str, change: BaseModel, as_json: bool) -> None:
    """One task update; prints the changed task."""
    task: Task = _update(session, update, change, Task)
    print_json(task) if as_json else ok(f"Updated {task_line(task.model_dump())}")


@tool_app.command("task-status")
def task_status(
    session: str = SESSION,
    task_id: str = typer.Option(..., "--id", help="The task id."),
    status: str = typer.Option(..., "--status", help="/".join(TASK_STATUSES)),
    as_json: bool = JSON,
) -> None:
    """Change a task's status."""
    _change_task(session, "task_status", _contract(TaskStatusChange, id=task_id, status=status), as_json)


@tool_app.command("task-priority")
def task_priority(
    session: str = SESSION,
    task_id: str = typer.Option(..., "--id", help="The task id."),
    priority: int = typer.Option(..., "--priority", "-p", help="0 critical .. 4 backlog."),
    as_json: bool = JSON,
) -> None:
    """Set a task's priority."""
    _change_task(session, "task_priority", _contract(TaskPriorityChange, id=task_id, priority=priority), as_json)


@tool_app.command("task-depends")
def task_depends(
    session: str = SESSION,
    task_id: str = typer.Option(..., "--id", help="The task that waits."),
    on: str = typer.Option(..., "--on", help="The task it waits for."),
    as_json: bool = JSON,
) -> None:
    """Make a task wait for another; a missing task or a cycle is refused."""
    _change_task(session, "task_depends", _contract(TaskDependency, id=task_id, depends_on=on.lstrip("#")), as_json)


@tool_app.command("task-list")
def task_list(session: str = SESSION, as_json: bool = JSON) -> None:
    """List the tasks, grouped by status."""
    tasks: list[Task] = _query(session, "task_list", result_type=list[Task])
    if as_json:
        print_json([t.model_dump(mode="json") for t in tasks])
    else:
        print_tasks([t.model_dump() for t in tasks])


@tool_app.command("task-next")
def task_next(session: str = SESSION, as_json: bool = JSON) -> None:
    """The next task: remaining, its dependencies completed, lowest priority number, oldest first."""
    task: Task | None = _query(session, "task_next", result_type=Task | None)
    if as_json:
        print_json(task.model_dump(mode="json") if task else None)
    elif task is None:
        console.print("no task is ready")
    else:
        console.print(task_line(task.model_dump()), markup=False)


@tool_app.command("note-add")
def note_add(
    session: str = SESSION,
    note_type: str = typer.Option(..., "--type", "-t", help="/".join(NOTE_TYPES)),
    content: str = typer.Option(..., "--content", "-c", help="The note's text."),
    as_json: bool = JSON,
) -> None:
    """Record a note for the coming iterations."""
    note: Note = _update(session, "note_add", _contract(NewNote, type=note_type, content=content), Note)
    print_json(note) if as_json else ok(f"Noted [{note.type}] {note.content}")


@tool_app.command("note-list")
def note_list(
    session: str = SESSION,
    note_type: str = typer.Option("", "--type", "-t", help="Only this type."),
    as_json: bool = JSON,
) -> None:
    """List notes, optionally of one type."""
    if note_type and note_type not in NOTE_TYPES:
        fail(f"unknown note type {note_type!r}; choose {', '.join(NOTE_TYPES)}")
    notes: list[Note] = _query(session, "note_list", note_type, result_type=list[Note])
    if as_json:
        print_json([n.model_dump(mode="json") for n in notes])
    else:
        print_notes([n.model_dump() for n in notes])


@tool_app.command("iteration-summary")
def iteration_summary(
    session: str = SESSION,
    summary: str = typer.Option(..., "--summary", help="What was accomplished."),
    as_json: bool = JSON,
) -> None:
    """Record a summary for the current iteration."""
    item = _contract(NewSummary, summary=summary)
    record: IterationSummary = _update(session, "iteration_summary", item, IterationSummary)
    print_json(record) if as_json else ok(f"Recorded the summary of iteration {record.iteration}")


@tool_app.command("session-complete")
def session_complete(session: str = SESSION) -> None:
    """End the session: accepted only when every task is completed, blocked or cancelled."""
    ok(_update(session, "session_complete", None, str))
