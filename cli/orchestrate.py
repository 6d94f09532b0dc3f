"""``iter orchestrate --request ID``: start (or attach to) a request's workflow and follow it."""

from __future__ import annotations

from typing import Any

import typer
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from cli import project_store as store
from cli import runtime
from cli.executor import require_executor
from cli.output import console, err_console, explain_interrupt, fail, print_json
from cli.summary import print_summary
from cli.watch import follow
from models.config import Settings
from models.details import request_details, static_summary
from models.project import Project, request_workflow_id
from models.request import RequestInput
from workflows.request import RequestWorkflow


def orchestrate(
    request: str = typer.Option(..., "--request", "-r", help="The request id, e.g. req_01."),
    executor: str | None = typer.Option(None, "--executor", help="docker (default) or local."),
    model: str | None = typer.Option(None, "--model", help="The coder model."),
    detach: bool = typer.Option(False, "--detach", help="Start it and return at once."),
    quiet: bool = typer.Option(False, "--quiet", help="Phases only, no streamed tokens."),
    as_json: bool = typer.Option(False, "--json", help="Print the final state as JSON."),
) -> None:
    """Run a request through the pipeline: prompt, stream, review, execute, verify."""
    root = store.require_root()
    project = store.load(root)
    if project.request(request) is None:
        fail(f"no request {request!r}; `iter request list` shows them")
    if executor is not None and executor not in ("docker", "local"):
        fail(f"unknown executor {executor!r}; choose docker or local")
    cfg = runtime.settings(**{"executor.backend": executor, "llm.model": model})
    require_executor(cfg)  # no Docker: say so now, before a workflow starts
    try:
        state = runtime.run(_orchestrate(cfg, project, request, str(root), detach, quiet or as_json, as_json))
    except KeyboardInterrupt:
        explain_interrupt(
            f"Detached; the request goes on. Attach again with `iter orchestrate --request {request}`; "
            f"`iter cancel {request}` stops it"
        )
        raise typer.Exit(130) from None
    if state is None:
        return
    store.record_outcome(request, state)
    if as_json:
        print_json(state)
    else:
        print_summary(state)
    if state.get("outcome") != "passed":
        raise typer.Exit(1)


async def _orchestrate(
    cfg: Settings, project: Project, request_id: str, workspace: str, detach: bool, quiet: bool, as_json: bool = False
) -> dict[str, Any] | None:
    client = await runtime.client_for(cfg)
    await runtime.ensure_worker(client, cfg)
    wid = request_workflow_id(project.name, request_id)
    attached = await _running(client, wid)
    if not attached:
        summary, details = _ui_summary(project, request_id)
        # USE_EXISTING closes the race with a second `iter orchestrate` started at the same moment.
        await client.start_workflow(
            RequestWorkflow.run,
            RequestInput(project=project, request_id=request_id, workspace=workspace, settings=cfg),
            id=wid,
            task_queue=cfg.temporal.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=summary,
            static_details=details,
        )
    # With --json, stdout carries the JSON alone; people's lines go to stderr.
    out = err_console if as_json else console
    ui = f"http://localhost:{cfg.temporal.ui_port}/namespaces/{cfg.temporal.namespace}/workflows/{wid}"
    out.print(f"{'Attached to' if attached else 'Started'} {wid}  (Temporal UI: {ui})", soft_wrap=True)
    store.record_status(request_id, "running")
    if detach:
        out.print(f"Follow it with `iter orchestrate --request {request_id}` or `iter status {request_id}`")
        return None
    status = await follow(client, wid, show_tokens=not quiet, show_phases=not as_json)
    return await final_state(client, wid, status)


def _ui_summary(project: Project, request_id: str) -> tuple[str, str]:
    """What the Temporal web UI shows for the workflow: the request's description in the list,
    and its criteria on the workflow's page."""
    request = project.request(request_id)
    description = request.description if request else request_id
    criteria = list(request.criteria) if request else []
    return static_summary(request_id, description), request_details(project.name, request_id, description, criteria)


async def _running(client: Client, wid: str) -> bool:
    try:
        return (await client.get_workflow_handle(wid).describe()).status == WorkflowExecutionStatus.RUNNING
    except RPCError:
        return False


async def final_state(client: Client, wid: str, status: WorkflowExecutionStatus | None) -> dict[str, Any]:
    handle = client.get_workflow_handle(wid)
    if status == WorkflowExecutionStatus.COMPLETED:
        result = await handle.result()
        return result["state"] if isinstance(result, dict) else result.state.model_dump(mode="json")
    try:
        state = await handle.query("status")
        return state if isinstance(state, dict) else {}
    except RPCError:
        return {"outcome": (status.name.lower() if status else "unknown"), "error": "no state available"}
