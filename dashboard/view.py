"""What the dashboard reads from Temporal and the steering it sends: the list of iter's workflows
(from their search attributes), one workflow's state (its status query, or its result once it has
closed) and the signals and updates behind the page's buttons. No I/O but Temporal's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from models import search
from models.review import SAFETY_POINTS

QUERY_TIMEOUT = timedelta(seconds=5)
LIST_LIMIT = 200
MAX_MESSAGE_CHARS = 20_000
MAX_REASON_CHARS = 2_000
WORKFLOW_ID = re.compile(r"iter-[A-Za-z0-9_.-]{1,200}")
KINDS = {"RequestWorkflow": "request", "SessionWorkflow": "session"}


class ActionRefused(Exception):
    """A button the workflow cannot honour now: one line for the person who pressed it."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Links:
    """Where the Temporal web UI shows a workflow."""

    temporal_ui: str
    namespace: str

    def workflow(self, workflow_id: str) -> str:
        return f"{self.temporal_ui.rstrip('/')}/namespaces/{quote(self.namespace)}/workflows/{quote(workflow_id)}"

    def list_page(self) -> str:
        query = quote("WorkflowId STARTS_WITH 'iter-'")
        return f"{self.temporal_ui.rstrip('/')}/namespaces/{quote(self.namespace)}/workflows?query={query}"


def valid_id(workflow_id: str) -> bool:
    return WORKFLOW_ID.fullmatch(workflow_id) is not None


def _status(status: WorkflowExecutionStatus | None) -> str:
    return status.name.lower() if status else "unknown"


async def list_workflows(client: Client, links: Links, project: str = "") -> list[dict[str, Any]]:
    """Requests and sessions, newest first, with what their search attributes say."""
    query = "WorkflowId STARTS_WITH 'iter-'"
    if project:
        query += f" AND IterProject = '{project}'"
    rows: list[dict[str, Any]] = []
    async for wf in client.list_workflows(query, limit=LIST_LIMIT):
        attrs = wf.typed_search_attributes
        rows.append(
            {
                "workflow_id": wf.id,
                "run_id": wf.run_id,
                "kind": KINDS.get(wf.workflow_type, wf.workflow_type),
                "status": _status(wf.status),
                "project": attrs.get(search.PROJECT) or "",
                "item": attrs.get(search.ITEM) or "",
                "phase": attrs.get(search.PHASE) or "",
                "outcome": attrs.get(search.OUTCOME) or "",
                "started": wf.start_time.isoformat(timespec="seconds"),
                "closed": wf.close_time.isoformat(timespec="seconds") if wf.close_time else "",
                "temporal_url": links.workflow(wf.id),
            }
        )
    return rows


async def detail(client: Client, links: Links, workflow_id: str) -> dict[str, Any]:
    """One workflow as the page shows it: its Temporal status, kind and whole state."""
    handle = client.get_workflow_handle(workflow_id)
    desc = await _describe(handle)
    state = await _state(handle, desc.status)
    return {
        "workflow_id": workflow_id,
        "run_id": desc.run_id,
        "kind": KINDS.get(desc.workflow_type, desc.workflow_type),
        "status": _status(desc.status),
        "temporal_url": links.workflow(workflow_id),
        "points": SAFETY_POINTS,
        "state": state,
    }


async def _describe(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionDescription:
    try:
        return await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ActionRefused(f"no workflow {handle.id}", status=404) from exc
        raise ActionRefused(f"Temporal does not answer ({exc.message}); retrying", status=503) from exc


async def _state(handle: WorkflowHandle[Any, Any], status: WorkflowExecutionStatus | None) -> dict[str, Any]:
    try:
        state = await handle.query("status", rpc_timeout=QUERY_TIMEOUT)
        if isinstance(state, dict):
            return state
    except (RPCError, Exception):  # a closed workflow with no worker to replay it: its result still says
        pass
    if status == WorkflowExecutionStatus.COMPLETED:
        try:
            result = await handle.result(rpc_timeout=QUERY_TIMEOUT)
        except (RPCError, Exception):
            return {}
        if isinstance(result, dict):
            return result.get("state", result) if "state" in result else result
    return {}


# --- steering ------------------------------------------------------------------------------------

SIGNALS = {"pause": "pause", "resume": "resume", "stop": "stop"}


async def act(client: Client, workflow_id: str, action: str, body: dict[str, Any]) -> str:
    """Sends what a button asks for; returns what to tell the person, or raises ActionRefused."""
    handle = client.get_workflow_handle(workflow_id)
    desc = await _describe(handle)
    if desc.status != WorkflowExecutionStatus.RUNNING:
        raise ActionRefused(f"{workflow_id} is {_status(desc.status)}; nothing to {action}")
    kind = KINDS.get(desc.workflow_type, "")
    if action in SIGNALS:
        if action == "stop" and kind != "session":
            raise ActionRefused("only a session can be stopped; cancel a request instead", status=400)
        await handle.signal(SIGNALS[action])
        return {
            "pause": "pause requested: it takes effect at the next phase boundary",
            "resume": "resumed",
            "stop": "stop requested: the session ends after the current iteration",
        }[action]
    if action == "message":
        text = str(body.get("text", "")).strip()
        if not text:
            raise ActionRefused("the message is empty", status=400)
        if len(text) > MAX_MESSAGE_CHARS:
            raise ActionRefused(f"the message is longer than {MAX_MESSAGE_CHARS} characters", status=400)
        await handle.signal("message", text)
        return "message queued for the next model call"
    if action == "cancel":
        await handle.cancel()
        return "cancel requested: the running step is stopped and the executor released"
    if action in ("approve", "deny"):
        step, reason = str(body.get("step_id", "")), str(body.get("reason", ""))[:MAX_REASON_CHARS]
        if not step:
            raise ActionRefused("which step? step_id is missing", status=400)
        if action == "deny" and not reason.strip():
            raise ActionRefused("a denial needs a reason: the coder reads it when it plans again", status=400)
        try:
            # The policy's HoldDecision: an empty step would decide every waiting step, so one is required here.
            await handle.execute_update(action, {"step": step, "reason": reason}, rpc_timeout=QUERY_TIMEOUT)
        except WorkflowUpdateFailedError as exc:
            raise ActionRefused(str(exc.cause or exc)) from exc
        except RPCError as exc:
            raise ActionRefused(f"{workflow_id} did not take the {action}: {exc.message}") from exc
        return f"step {step} {'approved' if action == 'approve' else 'denied'}"
    raise ActionRefused(f"unknown action {action!r}", status=404)
