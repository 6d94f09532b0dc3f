"""``iter history ID``: the audit trail from the workflow history itself, phase by phase."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.contrib.pydantic import pydantic_data_converter

from cli import runtime
from cli.control import _handle
from cli.output import console, print_json

CONVERTER = pydantic_data_converter.payload_converter
BRIEF = 160


def _decode(payloads: Any) -> list[Any]:
    try:
        from temporal.payloads import resolve  # large values are stored by reference

        return list(CONVERTER.from_payloads(resolve(list(payloads.payloads))))
    except Exception:
        return ["<undecodable>"]


def _brief(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= BRIEF else text[:BRIEF] + "…"


def _summary_of(event: HistoryEvent) -> str:
    meta = event.user_metadata.summary
    if meta.data:
        try:
            return str(CONVERTER.from_payloads([meta])[0])
        except Exception:
            return ""
    return ""


def _result_brief(result: Any) -> str:
    if isinstance(result, dict):
        if "context_files" in result:
            return f"prompt of ~{result['approx_tokens']} tokens with {len(result['context_files'])} context files"
        if "usage" in result and "text" in result:
            u = result["usage"]
            rate = f"{u['completion_tokens']} tokens in {u['duration_s']}s ({u['tokens_per_s']} tok/s)"
            return f"{u['model']} {rate}: {_brief(result['text'])}"
        if "results" in result:
            return "; ".join(f"{r['step_id']} {'ok' if r['ok'] else 'FAILED'}" for r in result["results"])
        if "verdict" in result:
            reasons = "; ".join(f["reason"] for f in result.get("findings", []))
            return f"{result['verdict']}" + (f": {reasons}" if reasons else "")
        if "review" in result:
            return f"{result['review']['verdict']}"
        if "kept" in result and "content" in result:  # keep_definitions
            return f"kept {', '.join(result['kept'])}" if result["kept"] else "the answer kept every definition"
    return _brief(result)


def entries(events: list[HistoryEvent]) -> list[dict[str, Any]]:
    scheduled: dict[int, str] = {}
    out: list[dict[str, Any]] = []
    for e in events:
        kind = EventType.Name(e.event_type).removeprefix("EVENT_TYPE_")
        when = e.event_time.ToDatetime().isoformat(timespec="milliseconds")
        text = ""
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = e.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[e.event_id] = name
            text = f"{name}: {_summary_of(e) or 'scheduled'}"
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attrs = e.activity_task_completed_event_attributes
            result = _decode(attrs.result)
            text = f"{scheduled.get(attrs.scheduled_event_id, '?')} → {_result_brief(result[0] if result else None)}"
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            failed = e.activity_task_failed_event_attributes
            text = f"{scheduled.get(failed.scheduled_event_id, '?')} failed: {failed.failure.message}"
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            timed_out = e.activity_task_timed_out_event_attributes
            text = f"{scheduled.get(timed_out.scheduled_event_id, '?')} timed out ({timed_out.failure.message})"
        elif e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            details = e.marker_recorded_event_attributes.details
            meta = _decode(details["data"]) if "data" in details else []
            result = _decode(details["result"]) if "result" in details else []
            name = meta[0].get("activity_type", "?") if meta and isinstance(meta[0], dict) else "?"
            text = f"{name} (local) → " + (_result_brief(result[0]) if result else "done")
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signaled = e.workflow_execution_signaled_event_attributes
            args = _decode(signaled.input)
            text = f"signal {signaled.signal_name}" + (f": {_brief(args)}" if args else "")
        elif e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            vals = {k: _decode_single(v) for k, v in fields.items()}
            text = f"phase {vals.get('IterPhase', '?')}, outcome {vals.get('IterOutcome', '?')}"
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            text = f"started {e.workflow_execution_started_event_attributes.workflow_type.name}"
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            result = _decode(e.workflow_execution_completed_event_attributes.result)
            value = result[0] if result and isinstance(result[0], dict) else {}
            state = value.get("state", value)  # a request wraps its state; a session returns it
            outcome = state.get("outcome") or state.get("status") or "?"
            text = f"completed: {outcome}" + (f" ({state['error']})" if state.get("error") else "")
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            text = f"failed: {e.workflow_execution_failed_event_attributes.failure.message}"
        elif e.event_type in (
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
        ):
            text = "cancel requested" if "REQUESTED" in kind else "cancelled"
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            accepted = e.workflow_execution_update_accepted_event_attributes.accepted_request
            args = _decode(accepted.input.args)
            text = f"update {accepted.input.name}" + (f": {_brief(args)}" if args else "")
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            text = "continued as new"
        else:
            continue  # task bookkeeping (scheduled/started/completed workflow tasks) says nothing to a reader
        out.append({"id": e.event_id, "time": when, "event": kind, "text": text})
    return out


def _decode_single(payload: Any) -> Any:
    try:
        from temporal.payloads import resolve

        value = CONVERTER.from_payloads(resolve([payload]))[0]
    except Exception:
        return "?"
    return value[0] if isinstance(value, list) and value else value


def history(
    target: str = typer.Argument(..., help="A request id (req_01), a session name or a workflow id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for programs."),
) -> None:
    """The audit trail of a request or session, from its Temporal history."""

    async def go() -> list[dict[str, Any]]:
        _, handle = await _handle(target)
        events = [e async for e in handle.fetch_history_events()]
        return entries(events)

    rows = runtime.run(go())
    if as_json:
        print_json(rows)
        return
    for row in rows:
        console.print(
            f"[dim]{row['time'][11:23]}[/dim] [cyan]{row['event'].lower():<36}[/cyan] {escape(row['text'])}",
            soft_wrap=True,
        )
