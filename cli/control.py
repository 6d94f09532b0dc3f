"""Inspect and steer running work: status, pause, resume, cancel, message. Each takes a request
id (req_01), a session name, or a workflow id."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
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
    except (RPCError, Exception) as exc:  # an older version's workflow, or no worker to answer
        state = await _from_history(handle, desc, exc)
    state = state if isinstance(state, dict) else {}
    if state.get("paused"):
        state["pause"] = pause_word(desc)
    waiting = waiting_lines(desc)
    return status, {**state, "waiting": waiting} if waiting else state


async def _from_history(handle: WorkflowHandle[Any, Any], desc: WorkflowExecutionDescription, why: Exception) -> Any:
    from temporalio.client import WorkflowExecutionStatus

    from cli.history_state import state_from_history

    reason = (getattr(why, "message", "") or str(why) or type(why).__name__).splitlines()[0][:200]
    if desc.status == WorkflowExecutionStatus.RUNNING:
        return {"read_from": f"the status query could not be answered ({reason}); is a worker running?"}
    try:
        state, source = await state_from_history(handle)
    except Exception as exc:  # a history that cannot be decoded either: say both
        return {"read_from": f"the status query could not be answered ({reason}), nor the history read ({exc})"}
    said = f"read from the history ({source}): the status query could not be answered ({reason})"
    return {**state, "read_from": said}


def pause_word(desc: WorkflowExecutionDescription) -> str:
    """A pause takes effect at the next phase boundary: until the running activity ends, the
    workflow is only pausing."""
    from cli.waiting import ACTIVITIES

    running = [p.activity_type.name for p in desc.raw_description.pending_activities]
    if not running:
        return "paused"
    what = ACTIVITIES.get(running[0], (running[0].replace("_", " "), ""))[0]
    return f"pausing (once {what} ends)"


def waiting_lines(desc: WorkflowExecutionDescription) -> list[str]:
    """What the running activities wait on: a model that has gone quiet (from its heartbeat), or
    the last failure of an activity being retried."""
    from cli.waiting import explain
    from temporal.payloads import decoded_details

    lines = []
    for pending in desc.raw_description.pending_activities:
        name = pending.activity_type.name
        details = decoded_details(pending.heartbeat_details.payloads)
        silent = details.get("silent_s", 0) if isinstance(details, dict) else 0
        if silent >= SHOW_SILENCE_S:
            limit = details.get("limit_s", 0)
            lines.append(f"{name}: the model has sent nothing for {silent:.0f} s (stopped, retried at {limit:.0f} s)")
        said = explain(pending)
        if said:
            lines.append(said)
    return lines


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
    if state.get("read_from"):
        console.print(f"[yellow]{state['read_from']}[/yellow]")
    if "tasks" in state:  # a session: tasks, notes, iterations, tokens
        session_view.print_status(status_name, state)
        print_held(state)
        return
    console.print(
        f"[bold]{state.get('workflow_id', target)}[/bold]  workflow {status_name}"
        + (f"  phase {state.get('phase')}  outcome {state.get('outcome')}" if state.get("phase") else "")
        + (f"  [yellow]{state.get('pause') or 'paused'}[/yellow]" if state.get("paused") else "")
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


def refresh_running(project: Any) -> bool:
    """Bring the project file's "running" requests up to date with their workflows (cancelled,
    finished while detached...). False when Temporal cannot be asked."""
    from cli import project_store as store

    async def go() -> dict[str, dict[str, Any]]:
        from models.project import request_workflow_id
        from temporal.client import connect

        cfg = runtime.settings()
        client = await connect(cfg, start_server=False, say=lambda _: None)
        found = {}
        for req in project.requests:
            if req.status == "running":
                handle = client.get_workflow_handle(request_workflow_id(project.name, req.id, project.id))
                found[req.id] = await _final(handle)
        return found

    try:
        states = runtime.run(go())
    except Exception:  # no server, no connection: the caller says so
        return False
    for request_id, state in states.items():
        store.record_outcome(request_id, state)
    return True


async def _final(handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError

    try:
        desc = await handle.describe()
    except RPCError:
        return {}
    if desc.status == WorkflowExecutionStatus.RUNNING:
        return {"outcome": "running"}
    if desc.status == WorkflowExecutionStatus.CANCELED:
        return {"outcome": "cancelled"}
    if desc.status == WorkflowExecutionStatus.COMPLETED:  # the result needs no worker, a query would
        result = await handle.result()
        return dict(result.get("state", {})) if isinstance(result, dict) else {}
    return {"outcome": "failed"}  # terminated, timed out, failed: it will not pass any more


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
                "folder": await _folder(wf),
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table("workflow", "status", "phase", "outcome", "started", "folder")
    home = str(Path.home())
    for row in rows:
        folder = "~" + row["folder"][len(home) :] if row["folder"].startswith(home + "/") else row["folder"]
        table.add_row(row["workflow_id"], row["status"], row["phase"], row["outcome"], row["started"][:19], folder)
    console.print(table)
    if not rows:
        console.print("nothing yet" + ("" if root else "; create a project with `iter project create`"))


async def _folder(wf: Any) -> str:
    """The folder a workflow works in: the memo iter sets when it starts one."""
    try:
        memo = await wf.memo()
    except Exception:  # a workflow started by something else: no memo to read
        return ""
    return str(memo.get("folder", "")) if isinstance(memo, dict) else ""


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
