"""Following a running workflow as lines: its event stream (through Temporal, so from any machine),
until it ends or the user detaches with Ctrl-C (the workflow goes on). The full-screen view is
``cli/tui.py``; both read ``temporal/events.py``."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from datetime import timedelta
from typing import Any

import typer
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from cli.output import console, err_console
from cli.waiting import StatusLine, explain
from models.events import (
    Finished,
    HookRan,
    LiveEvent,
    MessageQueued,
    ModelEnded,
    ModelFailed,
    ModelStarted,
    NoteAdded,
    Notice,
    OutputLines,
    PausedChanged,
    PhaseChanged,
    StepFinished,
    StepHeld,
    StepStarted,
    TaskChanged,
    Tokens,
    VerdictGiven,
)
from temporal.events import StreamItem, end_offset, subscribe

PROBLEM_EVERY_S = 2.0
QUERY_TIMEOUT = timedelta(seconds=5)


class LinePrinter:
    """Prints events as lines; streamed tokens inline, every other line after a line break."""

    def __init__(self, show_tokens: bool = True, show_phases: bool = True, session: bool = False) -> None:
        self.show_tokens, self.show_phases, self.session = show_tokens, show_phases, session
        self.mid_line = False
        self.on_token: list[Any] = []  # callbacks(text) after a token reaches the terminal (bench)
        self.waiting = StatusLine()  # why it waits: one line, in place on a terminal
        self._header = ""  # the last stream header shown, and whether tokens followed it
        self._answered = False

    def show(self, event: LiveEvent) -> None:
        if isinstance(event, Tokens):
            self._answered = True
            if self.show_tokens:
                self.waiting.clear()
                console.print(event.text, end="", markup=False, soft_wrap=True, highlight=False)
                console.file.flush()
                self.mid_line = True
                for callback in self.on_token:
                    callback(event.text)
            return
        if isinstance(event, ModelEnded):
            self.newline()
            return
        if isinstance(event, ModelFailed):
            self.newline()
            self.waiting.show(f"waiting: {event.message}")
            return
        if isinstance(event, (Notice, StepHeld)):
            self.newline()
            self.waiting.clear()
            err_console.print(f"[yellow]{_problem_line(event)}[/yellow]", soft_wrap=True)
            return
        if isinstance(event, ModelStarted):
            header = f"{event.role} · {event.model} · {event.schema_name}" + (
                f" (repair {event.repair})" if event.repair else ""
            )
            if header == self._header and not self._answered:
                return  # a retry of a call that never answered: its header once is enough
            self._header, self._answered = header, False
        line = self._line(event)
        if line is not None:
            self.newline()
            self.waiting.clear()
            console.print(line, soft_wrap=True, highlight=False)

    def _line(self, event: LiveEvent) -> str | None:
        if not self.show_phases:
            return None
        if isinstance(event, PhaseChanged):
            where = f" [{event.iteration}]" if self.session else ""
            width = 9 if self.session else 8
            return f"[cyan]{event.phase:>{width}}[/cyan]{where} {_esc(event.message)}"
        if isinstance(event, ModelStarted):
            repair = f" (repair {event.repair})" if event.repair else ""
            return (
                f"[dim]── {event.role} · {_esc(event.model)} · {event.schema_name}{repair} ──[/dim]"
                if self.show_tokens
                else None
            )
        if isinstance(event, StepStarted):
            return f"[dim]   ▶ {_esc(event.step_id)} ({event.step_type}) {_esc(event.detail)}[/dim]"
        if isinstance(event, OutputLines):
            if not self.show_tokens:
                return None
            return "\n".join(f"[dim]   │ {_esc(line)}[/dim]" for line in event.lines)
        if isinstance(event, StepFinished):
            return f"   {_step_end(event)}"
        if isinstance(event, VerdictGiven):
            return f"   [bold]{event.stage} verdict[/bold] {_esc(event.line())}"
        if isinstance(event, TaskChanged):
            return f"[dim]   task #{_esc(event.id)} [{event.status}] {_esc(event.content[:120])}[/dim]"
        if isinstance(event, NoteAdded):
            return f"[dim]   note [{event.type}] {_esc(event.content[:200])}[/dim]"
        if isinstance(event, HookRan):
            return f"[dim]   hook {event.point}: {_esc(event.command[:120])} ({_esc(event.status)})[/dim]"
        if isinstance(event, MessageQueued):
            return f"[dim]   message queued: {_esc(event.text[:200])}[/dim]"
        if isinstance(event, PausedChanged):
            return "[yellow]   pause requested: it takes effect at the next phase[/yellow]" if event.paused else None
        if isinstance(event, Finished):
            return None
        return None

    def newline(self) -> None:
        if self.mid_line:
            console.print()
            self.mid_line = False


def _esc(text: str) -> str:
    return text.replace("[", r"\[")


def _step_end(event: StepFinished) -> str:
    if event.skipped:
        return f"[dim]- {_esc(event.step_id)} skipped[/dim]"
    if event.ok:
        return f"[green]✓[/green] {_esc(event.step_id)} ({event.duration_s:.1f} s)"
    why = "timed out" if event.timed_out else f"exit {event.exit_code}"
    return f"[red]✗[/red] {_esc(event.step_id)} {why} ({event.duration_s:.1f} s)"


def _problem_line(event: ModelFailed | Notice | StepHeld) -> str:
    if isinstance(event, ModelFailed):
        return f"model: {_esc(event.message)}"
    if isinstance(event, StepHeld):
        if event.resolved:
            return f"held step {_esc(event.step_id)} {event.resolved}"
        return f"held: step {_esc(event.step_id)} waits for you ({_esc(event.reason)}); `iter approve` or `iter deny`"
    return _esc(event.message)


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


async def _report_problems(handle: WorkflowHandle[Any, Any], printer: LinePrinter) -> None:
    last = ""
    while True:
        await asyncio.sleep(PROBLEM_EVERY_S)
        problem = await pending_problem(handle)
        if problem and problem != last:
            printer.newline()
        printer.waiting.show(problem)
        last = problem


async def print_stream(
    client: Client, workflow_id: str, printer: LinePrinter, from_offset: int = 0
) -> WorkflowExecutionStatus | None:
    """Print the workflow's events until its stream ends; returns the workflow's status then."""
    handle = client.get_workflow_handle(workflow_id)
    problems = asyncio.create_task(_report_problems(handle, printer))
    item: StreamItem
    try:
        async for item in subscribe(client, workflow_id, from_offset=from_offset, tokens=printer.show_tokens):
            printer.show(item.event)
    finally:
        problems.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await problems
        printer.newline()
        printer.waiting.clear()
    return await _closed_status(handle)


async def _closed_status(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus | None:
    """The status once it settles: the stream ends with the workflow's last event, a moment
    before the workflow itself closes."""
    status: WorkflowExecutionStatus | None = None
    for _ in range(100):
        try:
            status = (await handle.describe()).status
        except RPCError:
            return None
        if status != WorkflowExecutionStatus.RUNNING:
            return status
        await asyncio.sleep(0.1)
    return status


async def follow(
    client: Client, workflow_id: str, show_tokens: bool = True, show_phases: bool = True, attached: bool = False
) -> WorkflowExecutionStatus | None:
    """A request's progress as lines until it closes; returns its final status. Attached to a
    running one: from what is new (its past is in `iter status` and `iter history`)."""
    start = await end_offset(client, workflow_id) if attached else 0
    if attached and start and show_phases:
        console.print("[dim]… attached: what happened before is in `iter status` and `iter history`[/dim]")
    return await print_stream(client, workflow_id, LinePrinter(show_tokens, show_phases), from_offset=start)


async def follow_session(
    client: Client, workflow_id: str, show_tokens: bool, attached: bool
) -> WorkflowExecutionStatus | None:
    """A session's progress as lines; attached to a running one, from what is new."""
    start = await end_offset(client, workflow_id) if attached else 0
    return await print_stream(client, workflow_id, LinePrinter(show_tokens, True, session=True), from_offset=start)


# --- `iter watch` and `--watch` ---------------------------------------------------------------------


def full_screen_wanted(watch: bool, headless: bool = False) -> bool:
    """The full screen needs a terminal on both ends; anywhere else (a pipe, CI, --headless) lines."""
    if not watch or headless:
        return False
    if sys.stdin.isatty() and sys.stdout.isatty():
        return True
    err_console.print("[dim]--watch needs a terminal; printing lines instead[/dim]")
    return False


async def watch_until_left(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    """The full screen until the user leaves it; the workflow's status then (running: detached)."""
    from cli.tui import watch_full_screen

    await watch_full_screen(client, workflow_id)
    try:
        return (await client.get_workflow_handle(workflow_id).describe()).status
    except RPCError:
        return None


async def latest_running(client: Client) -> str | None:
    async for wf in client.list_workflows("WorkflowId STARTS_WITH 'iter-' AND ExecutionStatus = 'Running'", limit=1):
        return wf.id
    return None


def watch(
    target: str | None = typer.Argument(
        None, help="A request id (req_01), a session name or a workflow id; none: the latest running one."
    ),
    lines: bool = typer.Option(False, "--lines", help="Print lines instead of the full screen."),
    quiet: bool = typer.Option(False, "--quiet", help="With --lines: phases only, no streamed tokens."),
) -> None:
    """Follow a request or session live: full screen on a terminal, lines otherwise."""
    from cli import runtime
    from cli.output import explain_interrupt, fail
    from cli.targets import workflow_id_for

    async def go() -> None:
        cfg = runtime.settings()
        client = await runtime.client_for(cfg, start_server=False)
        wid = workflow_id_for(target) if target else await latest_running(client)
        if wid is None:
            fail("nothing is running; `iter status` lists requests and sessions, `iter watch ID` follows one")
        handle = client.get_workflow_handle(wid)
        try:
            desc = await handle.describe()
        except RPCError:
            fail(f"no workflow {wid}; `iter status` lists what exists")
        if full_screen_wanted(not lines):
            status = await watch_until_left(client, wid)
            if status == WorkflowExecutionStatus.RUNNING:
                err_console.print(f"Left the view; {wid} goes on. `iter watch {target or wid}` comes back")
            return
        if desc.workflow_type == "SessionWorkflow":
            await follow_session(client, wid, show_tokens=not quiet, attached=False)
        else:
            await follow(client, wid, show_tokens=not quiet)

    try:
        runtime.run(go())
    except KeyboardInterrupt:
        explain_interrupt("Stopped watching; the workflow goes on")
        raise typer.Exit(130) from None
