"""Following a running workflow: its live token stream and its phases, until it ends or the user
detaches with Ctrl-C (the workflow goes on)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from cli.output import console, err_console
from models.config import Settings
from models.live import live_path

POLL_S = 0.25
QUERY_TIMEOUT = timedelta(seconds=5)


class LiveTail:
    """Reads new lines of a live stream file and prints them as they come."""

    def __init__(self, path: Path, show_tokens: bool) -> None:
        self.path, self.offset, self.show_tokens = path, 0, show_tokens
        self.mid_line = False

    def pump(self) -> None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return
        complete = data.rsplit(b"\n", 1)[0] + b"\n" if b"\n" in data else b""
        self.offset += len(complete)
        for raw in complete.splitlines():
            try:
                self._show(json.loads(raw))
            except json.JSONDecodeError:
                continue

    def _show(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "token" and self.show_tokens:
            console.print(event["text"], end="", markup=False, soft_wrap=True)
            self.mid_line = True
        elif kind == "model_start" and self.show_tokens:
            self._newline()
            console.print(f"[dim]── {event['role']} · {event['model']} · {event['schema']} ──[/dim]")
        elif kind == "model_end" and self.show_tokens:
            self._newline()
        elif kind == "model_error":
            self._newline()
            err_console.print(f"[yellow]model: {event['message']}[/yellow]")

    def _newline(self) -> None:
        if self.mid_line:
            console.print()
            self.mid_line = False


async def pending_problem(handle: WorkflowHandle[Any, Any]) -> str:
    """Why the workflow waits, in the words of its last failed attempt (an unreachable model...)."""
    try:
        desc = await handle.describe()
    except RPCError:
        return ""
    for pending in desc.raw_description.pending_activities:
        if pending.attempt > 1 and pending.last_failure.message:
            return f"waiting: {pending.last_failure.message} (attempt {pending.attempt}, retrying)"
    return ""


async def follow(
    client: Client, settings: Settings, workflow_id: str, show_tokens: bool = True, show_phases: bool = True
) -> WorkflowExecutionStatus | None:
    """Print the workflow's progress until it closes; returns its final status."""
    handle = client.get_workflow_handle(workflow_id)
    desc = await handle.describe()
    tail = LiveTail(live_path(settings, f"{workflow_id}.{desc.run_id}"), show_tokens)
    seen_events = 0
    last_problem = ""
    ticks = 0
    while True:
        tail.pump()
        desc = await handle.describe()
        if desc.status != WorkflowExecutionStatus.RUNNING:
            tail.pump()
            tail._newline()
            return desc.status
        try:
            state = await handle.query("status", rpc_timeout=QUERY_TIMEOUT)
            events = state.get("events", []) if isinstance(state, dict) else []
            # Phase lines wait for the end of a streamed answer, so they never split its text.
            if show_phases and not tail.mid_line:
                for event in events[seen_events:]:
                    console.print(f"[cyan]{event['phase']:>8}[/cyan] {event['message']}")
                seen_events = len(events)
        except (RPCError, Exception):
            pass
        ticks += 1
        if ticks % 8 == 0:
            problem = await pending_problem(handle)
            if problem and problem != last_problem:
                tail._newline()
                err_console.print(f"[yellow]{problem}[/yellow]")
            last_problem = problem
        await asyncio.sleep(POLL_S)
