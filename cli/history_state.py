"""What a workflow last held, read from its history when no worker can answer a query: a closed
workflow of an older version (its code changed since, so replaying it for a query fails), or one
no worker serves. The close event holds a completed workflow's result; otherwise the newest state
the history carries is the input of its run (a session's carried state)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from temporalio.client import WorkflowHandle


def _decoded(payloads: Any) -> Any:
    from temporalio.contrib.pydantic import pydantic_data_converter

    from temporal.payloads import resolve  # large values are stored by reference

    values = pydantic_data_converter.payload_converter.from_payloads(resolve(list(payloads)))
    return values[0] if values else None


async def state_from_history(handle: WorkflowHandle[Any, Any]) -> tuple[dict[str, Any], str]:
    """The state as a dict and where it came from ("result", "carried state", "input"), or ({}, "")."""
    from temporalio.api.enums.v1 import EventType

    state: dict[str, Any] = {}
    source = ""
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            inp = _decoded(event.workflow_execution_started_event_attributes.input.payloads)
            if isinstance(inp, dict) and isinstance(inp.get("carry"), dict):
                state, source = inp["carry"], "the state carried into this run"
            elif isinstance(inp, dict):
                state = {k: inp[k] for k in ("request_id", "name", "workspace") if k in inp}
                source = "the workflow's input"
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            result = _decoded(event.workflow_execution_completed_event_attributes.result.payloads)
            if isinstance(result, dict):
                state = result.get("state", result) if isinstance(result.get("state"), dict) else result
                source = "the workflow's result"
    return state, source
