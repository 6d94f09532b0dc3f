"""``iter orchestrate --request ID``: start (or attach to) a request's workflow and follow it.

No surprises: a request that has already finished is shown, not run again (``--again`` runs it
anew, as a new run of the same workflow id); the executor and model a request was started with
are recorded in the project file, so attaching again needs no flags and never checks an executor
the request does not use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cli import project_store as store
from cli import runtime
from cli.output import console, err_console, explain_interrupt, fail, print_json

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowExecutionStatus

    from models.config import Settings
    from models.project import Project


def orchestrate(
    request: str = typer.Option(..., "--request", "-r", help="The request id, e.g. req_01."),
    executor: str | None = typer.Option(
        None, "--executor", help="docker (default) or local; remembered for this request."
    ),
    model: str | None = typer.Option(None, "--model", help="The coder model; remembered for this request."),
    again: bool = typer.Option(False, "--again", help="Run a finished request anew (a new run)."),
    detach: bool = typer.Option(False, "--detach", help="Start it and return at once."),
    quiet: bool = typer.Option(False, "--quiet", help="Phases only, no streamed tokens."),
    as_json: bool = typer.Option(False, "--json", help="Print the final state as JSON."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Follow it full screen (on a terminal; else lines)."),
) -> None:
    """Run a request through the pipeline: prompt, stream, review, execute, verify."""
    from cli.summary import print_summary

    root = store.require_root()
    project = store.load(root)
    req = project.request(request)
    if req is None:
        fail(f"no request {request!r}; `iter request list` shows them")
    if executor is not None and executor not in ("docker", "local"):
        fail(f"unknown executor {executor!r}; choose docker or local")
    executor = executor or req.executor
    model = model or req.model
    cfg = runtime.settings(**{"executor.backend": executor, "llm.model": model})
    options = {"executor": executor, "model": model}
    try:
        from cli.watch import full_screen_wanted

        full = full_screen_wanted(watch and not detach, headless=as_json)
        state = runtime.run(
            _orchestrate(cfg, project, request, str(root), options, again, detach, quiet or as_json, as_json, full)
        )
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
    cfg: Settings,
    project: Project,
    request_id: str,
    workspace: str,
    options: dict[str, str | None],
    again: bool,
    detach: bool,
    quiet: bool,
    as_json: bool = False,
    full_screen: bool = False,
) -> dict[str, Any] | None:
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.common import WorkflowIDConflictPolicy

    from cli.executor import require_executor
    from cli.watch import follow, watch_until_left
    from models.project import request_workflow_id
    from models.request import RequestInput
    from workflows.request import RequestWorkflow

    # With --json, stdout carries the JSON alone; people's lines go to stderr.
    out = err_console if as_json else console
    client = await runtime.client_for(cfg)
    wid = request_workflow_id(project.name, request_id, project.id)
    status = await _status(client, wid)
    attached = status == WorkflowExecutionStatus.RUNNING
    if status is not None and not attached and not again:
        out.print(
            f"{request_id} has already run ({wid}, {status.name.lower()}); this is its result. "
            f"`iter orchestrate --request {request_id} --again` runs it anew",
            soft_wrap=True,
        )
        return await final_state(client, wid, status)
    if not attached:
        require_executor(cfg)  # no Docker: say so now, before a workflow starts
        from cli.embedded import resolve

        cfg = resolve(cfg, runtime.say)  # no model server configured or answering: the embedded one
    await runtime.ensure_worker(client, cfg)
    if not attached:
        from activities.worktree import earlier_run  # lazily, like every import here: start-up time

        leftover = await earlier_run(Path(workspace), request_id)
        if leftover:
            fail(leftover)
        summary, details = _ui_summary(project, request_id)
        # USE_EXISTING closes the race with a second `iter orchestrate` started at the same moment.
        await client.start_workflow(
            RequestWorkflow.run,
            RequestInput(project=project, request_id=request_id, workspace=workspace, settings=cfg),
            id=wid,
            task_queue=cfg.temporal.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            memo={"folder": workspace},
            static_summary=summary,
            static_details=details,
        )
        store.record_run(request_id, options)
    ui = f"http://localhost:{cfg.temporal.ui_port}/namespaces/{cfg.temporal.namespace}/workflows/{wid}"
    out.print(f"{'Attached to' if attached else 'Started'} {wid}  (Temporal UI: {ui})", soft_wrap=True)
    if detach:
        out.print(
            f"Follow it with `iter orchestrate --request {request_id}` or `iter status {request_id}`; "
            f"`iter cancel {request_id}` stops it",
            soft_wrap=True,
        )
        return None
    if full_screen:
        final = await watch_until_left(client, wid)
        if final == WorkflowExecutionStatus.RUNNING:
            out.print(f"Left the view; the request goes on. `iter watch {request_id}` comes back", soft_wrap=True)
            return None
        return await final_state(client, wid, final)
    final = await follow(client, wid, show_tokens=not quiet, show_phases=not as_json, attached=attached)
    return await final_state(client, wid, final)


def _ui_summary(project: Project, request_id: str) -> tuple[str, str]:
    """What the Temporal web UI shows for the workflow: the request's description in the list,
    and its criteria on the workflow's page."""
    from models.details import request_details, static_summary

    request = project.request(request_id)
    description = request.description if request else request_id
    criteria = list(request.criteria) if request else []
    return static_summary(request_id, description), request_details(project.name, request_id, description, criteria)


async def _status(client: Client, wid: str) -> WorkflowExecutionStatus | None:
    from temporalio.service import RPCError

    try:
        return (await client.get_workflow_handle(wid).describe()).status
    except RPCError:
        return None


async def final_state(client: Client, wid: str, status: WorkflowExecutionStatus | None) -> dict[str, Any]:
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError

    handle = client.get_workflow_handle(wid)
    if status == WorkflowExecutionStatus.COMPLETED:
        result = await handle.result()
        return result["state"] if isinstance(result, dict) else result.state.model_dump(mode="json")
    try:
        state = await handle.query("status")
        state = state if isinstance(state, dict) else {}
    except RPCError:
        state = {}
    if status == WorkflowExecutionStatus.CANCELED:
        return {**state, "outcome": "cancelled"}
    if not state:
        return {"outcome": (status.name.lower() if status else "unknown"), "error": "no state available"}
    return state
