"""Inspect and steer running work: status, pause, resume, cancel, message. Each takes a request
id (req_01), a session name, or a workflow id."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import typer

from cli import runtime
from cli.output import console, fail, ok, print_json

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowExecutionDescription, WorkflowHandle

QUERY_TIMEOUT = timedelta(seconds=5)
SHOW_SILENCE_S = 5.0  # a model quiet for less is just thinking
LIST_LIMIT = 50


async def _handle(target: str) -> tuple[Client, WorkflowHandle[Any, Any]]:
    from temporalio.service import RPCError

    from cli.targets import workflow_id_for

    cfg = runtime.settings()
    client = await runtime.client_for(cfg)
    wid = workflow_id_for(target)
    handle = client.get_workflow_handle(wid)
    try:
        await handle.describe()
    except RPCError:
        fail(f"no workflow {wid} ({target}); `iter status` lists what exists")
    return client, handle


async def _state(handle: WorkflowHandle[Any, Any]) -> tuple[str, dict[str, Any]]:
    from temporalio.service import RPCError

    desc = await handle.describe()
    status = desc.status.name.lower() if desc.status else "unknown"
    try:
        state = await handle.query("status", rpc_timeout=QUERY_TIMEOUT)
    except (RPCError, Exception):
        state = {}
    state = state if isinstance(state, dict) else {}
    waiting = waiting_lines(desc)
    return status, {**state, "waiting": waiting} if waiting else state


def waiting_lines(desc: WorkflowExecutionDescription) -> list[str]:
    """What the running activities wait on: a model that has gone quiet (from its heartbeat), or
    the last failure of an activity being retried."""
    lines = []
    for pending in desc.raw_description.pending_activities:
        name = pending.activity_type.name
        details = _decoded(pending.heartbeat_details.payloads)
        silent = details.get("silent_s", 0) if isinstance(details, dict) else 0
        if silent >= SHOW_SILENCE_S:
            limit = details.get("limit_s", 0)
            lines.append(f"{name}: the model has sent nothing for {silent:.0f} s (stopped, retried at {limit:.0f} s)")
        if pending.attempt > 1 and pending.last_failure.message:
            lines.append(f"{name}: waiting: {pending.last_failure.message} (attempt {pending.attempt})")
    return lines


def _decoded(payloads: Any) -> Any:
    from temporalio.contrib.pydantic import pydantic_data_converter

    from temporal.payloads import resolve  # large values are stored by reference

    try:
        return pydantic_data_converter.payload_converter.from_payloads(resolve(list(payloads)))[0] if payloads else None
    except Exception:  # details of an unknown shape: nothing to show
        return None


def status(
    target: str | None = typer.Argument(None, help="A request id, session name or workflow id; none lists all."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for programs."),
) -> None:
    """Show where a request or session stands (or list them all)."""
    from cli import project_store as store
    from cli import session_view
    from cli.holds import print_held
    from cli.summary import summary_lines, usage_table

    if target is None:
        runtime.run(_list(as_json))
        return
    status_name, state = runtime.run(_status(target))
    if state.get("request_id") and store.find_root():
        store.record_outcome(state["request_id"], state)  # a detached request's end reaches the project file
    if as_json:
        print_json({"workflow_status": status_name, **state})
        return
    for line in state.get("waiting") or []:
        console.print(f"[yellow]{line}[/yellow]")
    if "tasks" in state:  # a session: tasks, notes, iterations, tokens
        session_view.print_status(status_name, state)
        print_held(state)
        return
    console.print(
        f"[bold]{state.get('workflow_id', target)}[/bold]  workflow {status_name}"
        + (f"  phase {state.get('phase')}  outcome {state.get('outcome')}" if state.get("phase") else "")
        + ("  [yellow]paused[/yellow]" if state.get("paused") else "")
    )
    if "results" in state:
        for line in summary_lines(state):
            console.print(f"  {line}")
    if state.get("usage"):
        console.print(usage_table(state))
    for finding in state.get("findings") or []:
        label = "[yellow]held[/yellow]" if finding.get("verdict") == "hold" else "[red]blocked[/red]"
        console.print(f"  {label} point {finding['point']} step {finding['step_id']}: {finding['reason']}")
    print_held(state)
    for event in (state.get("events") or [])[-10:]:
        console.print(f"  [cyan]{event['phase']:>8}[/cyan] {event['message']}")


async def _status(target: str) -> tuple[str, dict[str, Any]]:
    _, handle = await _handle(target)
    return await _state(handle)


async def _list(as_json: bool) -> None:
    from rich.table import Table

    from cli import project_store as store
    from models import search

    cfg = runtime.settings()
    client = await runtime.client_for(cfg)
    root = store.find_root()
    query = "WorkflowId STARTS_WITH 'iter-'"
    rows: list[dict[str, str]] = []
    async for wf in client.list_workflows(query, limit=LIST_LIMIT):
        attrs = wf.typed_search_attributes
        rows.append(
            {
                "workflow_id": wf.id,
                "status": wf.status.name.lower() if wf.status else "",
                "phase": attrs.get(search.PHASE) or "",
                "outcome": attrs.get(search.OUTCOME) or "",
                "started": wf.start_time.isoformat(timespec="seconds"),
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table("workflow", "status", "phase", "outcome", "started")
    for row in rows:
        table.add_row(row["workflow_id"], row["status"], row["phase"], row["outcome"], row["started"][:19])
    console.print(table)
    if not rows:
        console.print("nothing yet" + ("" if root else "; create a project with `iter project create`"))


def _signal(target: str, name: str, *args: Any) -> str:
    async def go() -> str:
        from temporalio.client import WorkflowExecutionStatus

        _, handle = await _handle(target)
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            fail(f"{handle.id} is not running; nothing to {name}")
        await handle.signal(name, *args)
        return handle.id

    return runtime.run(go())


def pause(target: str = typer.Argument(..., help="A request id (req_01), a session name or a workflow id.")) -> None:
    """Pause at the next phase boundary; nothing in flight is lost."""
    ok(f"Pause requested for {_signal(target, 'pause')}; it takes effect at the next phase boundary")


def resume(target: str = typer.Argument(..., help="A request id (req_01), a session name or a workflow id.")) -> None:
    """Resume a paused request or session."""
    ok(f"Resumed {_signal(target, 'resume')}")


def message(
    target: str = typer.Argument(..., help="A request id (req_01), a session name or a workflow id."),
    text: str = typer.Argument(..., help="Guidance for the next model call."),
) -> None:
    """Queue guidance; the next model call reads it."""
    if not text.strip():
        fail("the message is empty")
    ok(f"Message queued for {_signal(target, 'message', text)}")


def cancel(target: str = typer.Argument(..., help="A request id (req_01), a session name or a workflow id.")) -> None:
    """Cancel: the current step is stopped, the executor released, the history kept."""

    async def go() -> str:
        from temporalio.client import WorkflowExecutionStatus

        _, handle = await _handle(target)
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            fail(f"{handle.id} is not running; nothing to cancel")
        await handle.cancel()
        return handle.id

    ok(f"Cancel requested for {runtime.run(go())}")
