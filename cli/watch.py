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

from cli.output import console
from cli.waiting import StatusLine, explain
from models.config import Settings
from models.live import live_path

POLL_S = 0.25
SHOWN_ON_ATTACH = 5
QUERY_TIMEOUT = timedelta(seconds=5)


class LiveTail:
    """Reads new lines of a live stream file and prints them as they come."""

    def __init__(self, path: Path, show_tokens: bool, line: StatusLine | None = None) -> None:
        self.path, self.offset, self.show_tokens = path, 0, show_tokens
        self.mid_line = False
        self.line = line or StatusLine()
        self._header = ""  # the last stream header shown, and whether tokens followed it
        self._tokens_since_header = False

    def skip_to_end(self) -> None:
        """Attaching: what was streamed before is not replayed (`iter history` has the record)."""
        try:
            self.offset = self.path.stat().st_size
        except FileNotFoundError:
            self.offset = 0

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
            self.line.clear()
            console.print(event["text"], end="", markup=False, soft_wrap=True)
            self.mid_line = True
            self._tokens_since_header = True
        elif kind == "model_start" and self.show_tokens:
            repair = f" (repair {event['repair']})" if event.get("repair") else ""
            header = f"── {event['role']} · {event['model']} · {event['schema']}{repair} ──"
            if header == self._header and not self._tokens_since_header:
                return  # a retry of a call that never answered: the same header once is enough
            self._newline()
            self.line.clear()
            console.print(f"[dim]{header}[/dim]", markup=True)
            self._header, self._tokens_since_header = header, False
        elif kind == "model_end" and self.show_tokens:
            self._newline()
        elif kind == "model_error":
            self._newline()
            self.line.show(f"waiting: {event['message']}")

    def _newline(self) -> None:
        if self.mid_line:
            console.print()
            self.mid_line = False


async def pending_problem(handle: WorkflowHandle[Any, Any]) -> str:
    """Why the workflow waits, in iter's words (an unreachable model, a dead worker...)."""
    try:
        desc = await handle.describe()
    except RPCError:
        return ""
    for pending in desc.raw_description.pending_activities:
        text = explain(pending)
        if text:
            return text
    return ""


async def follow(
    client: Client,
    settings: Settings,
    workflow_id: str,
    show_tokens: bool = True,
    show_phases: bool = True,
    attached: bool = False,
) -> WorkflowExecutionStatus | None:
    """Print the workflow's progress until it closes; returns its final status. ``attached``: the
    workflow was already running, so only its last few phase lines are shown, and no old tokens."""
    handle = client.get_workflow_handle(workflow_id)
    desc = await handle.describe()
    line = StatusLine()
    tail = LiveTail(live_path(settings, f"{workflow_id}.{desc.run_id}"), show_tokens, line)
    if attached:
        tail.skip_to_end()
    seen_events = -1 if attached else 0
    ticks = 0
    while True:
        tail.pump()
        desc = await handle.describe()
        if desc.status != WorkflowExecutionStatus.RUNNING:
            tail.pump()
            tail._newline()
            line.clear()
            return desc.status
        try:
            state = await handle.query("status", rpc_timeout=QUERY_TIMEOUT)
            events = state.get("events", []) if isinstance(state, dict) else []
            if seen_events < 0:  # attaching: the recent past, not all of it
                seen_events = max(len(events) - SHOWN_ON_ATTACH, 0)
                if seen_events and show_phases:
                    console.print(f"[dim]… {seen_events} earlier phase line(s): `iter history` has them all[/dim]")
            # Phase lines wait for the end of a streamed answer, so they never split its text.
            if show_phases and not tail.mid_line and len(events) > seen_events:
                line.clear()
                for event in events[seen_events:]:
                    console.print(f"[cyan]{event['phase']:>8}[/cyan] {event['message']}", soft_wrap=True)
                if line.tty:
                    line.shown = ""  # the waiting line, if still true, comes back below them
                seen_events = len(events)
        except (RPCError, Exception):
            pass
        ticks += 1
        if ticks % 8 == 0:
            problem = await pending_problem(handle)
            if problem:
                tail._newline()
            line.show(problem)
        await asyncio.sleep(POLL_S)
