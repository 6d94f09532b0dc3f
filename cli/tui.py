"""``iter watch``'s full screen (Textual), iteratr's layout: a status bar (name, branch, iteration,
elapsed, phase, paused), the streaming model output, a sidebar with the tasks (a request: its
steps) by status icon, the notes and the verdicts, a log overlay, and a message box.

Everything comes through Temporal (the status query once, then the event stream), nothing from
the local disk, so it works the same attached to a worker on another machine. Keys steer the
workflow with the same signals and updates as ``iter pause|resume|cancel|message|approve|deny``.

Layouts: desktop (at least 100 x 25) puts the sidebar beside the output; compact hides it and
Ctrl+S shows it over the output.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar

from rich.text import Text
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.service import RPCError
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Log, Static

from cli.watch_model import WatchModel
from models.holds import HoldDecision
from temporal.events import StreamNotFound, subscribe

DESKTOP_MIN = (100, 25)
SIDEBAR_WIDTH = 45
REFRESH_S = 2.0
RPC_TIMEOUT = timedelta(seconds=10)


class LogScreen(ModalScreen[None]):
    """Every event so far, one line each (Ctrl+L or Esc closes it)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "close"),
        Binding("ctrl+l", "dismiss", "close"),
    ]
    DEFAULT_CSS = """
    LogScreen { align: center middle; }
    LogScreen > Log { width: 90%; height: 85%; border: round $accent; }
    """

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        log = Log(id="log", highlight=False)
        log.border_title = "log (Esc closes)"
        yield log

    def on_mount(self) -> None:
        self.query_one(Log).write_lines(self.lines)


class AskScreen(ModalScreen[str | None]):
    """One line of text from the user (a denial's reason, a confirmation)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "cancel")]
    DEFAULT_CSS = """
    AskScreen { align: center middle; }
    AskScreen > Vertical { width: 70; height: auto; border: round $warning; padding: 1; background: $surface; }
    """

    def __init__(self, question: str, placeholder: str = "") -> None:
        super().__init__()
        self.question, self.placeholder = question, placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.question))
            yield Input(placeholder=self.placeholder, id="answer")

    @on(Input.Submitted, "#answer")
    def _answered(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class WatchApp(App[str]):
    """Returns the workflow's outcome when it ends (or "detached" when the user leaves)."""

    TITLE = "iter watch"
    CSS = f"""
    Screen {{ layers: base above; }}
    #status {{ height: 1; background: $primary; color: $text; padding: 0 1; }}
    #body {{ height: 1fr; }}
    #main {{ width: 1fr; }}
    #output {{ height: 1fr; border: round $primary-lighten-2; }}
    #message {{ height: 3; }}
    #sidebar {{ width: {SIDEBAR_WIDTH}; border: round $secondary; }}
    #sidebar.overlay {{ layer: above; dock: right; background: $panel; }}
    .section {{ color: $accent; text-style: bold; margin-top: 1; }}
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c", "detach", "detach", priority=True),
        Binding("q", "detach", "detach"),
        Binding("ctrl+l", "logs", "logs"),
        Binding("ctrl+s", "sidebar", "sidebar"),
        Binding("i", "focus_message", "message"),
        Binding("escape", "blur", "leave input", show=False),
        Binding("p", "pause", "pause/resume"),
        Binding("x", "cancel", "cancel"),
        Binding("a", "approve", "approve"),
        Binding("d", "deny", "deny"),
    ]

    def __init__(self, client: Client, workflow_id: str, *, poll_s: float | None = None) -> None:
        super().__init__()
        self.client = client
        self.workflow_id = workflow_id
        self.handle = client.get_workflow_handle(workflow_id)
        self.model = WatchModel(workflow_id)
        self.poll_s = poll_s
        self.compact = False
        self.sidebar_open = False
        self.token_listeners: list[Callable[[str], None]] = []  # bench: a token reached the screen

    # --- layout ----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(Text(self.model.status_line()), id="status")
        with Horizontal(id="body"):
            with Vertical(id="main"):
                output = Log(id="output", highlight=False, max_lines=5000)
                output.border_title = "model output"
                yield output
                yield Input(placeholder="message the model (Enter sends, i focuses, Esc leaves)", id="message")
            with VerticalScroll(id="sidebar"):
                yield Static("tasks", classes="section", id="tasks-title")
                yield Static("", id="tasks")
                yield Static("review", classes="section")
                yield Static("", id="review")
                yield Static("notes", classes="section")
                yield Static("", id="notes")
        yield Footer()

    async def on_mount(self) -> None:
        self._layout(self.size.width, self.size.height)
        await self._refresh_state()
        self._render_all()
        self.query_one("#output", Log).focus()
        self.run_worker(self._follow(), name="stream", exclusive=False)
        self.set_interval(1.0, self._tick)
        self.set_interval(REFRESH_S, self._refresh_later)

    def on_resize(self, event: Any) -> None:
        self._layout(event.size.width, event.size.height)

    def _layout(self, width: int, height: int) -> None:
        self.compact = width < DESKTOP_MIN[0] or height < DESKTOP_MIN[1]
        sidebar = self.query_one("#sidebar")
        sidebar.set_class(self.compact, "overlay")
        sidebar.display = not self.compact or self.sidebar_open

    # --- data --------------------------------------------------------------------------------------

    async def _refresh_state(self) -> None:
        try:
            desc = await self.handle.describe()
            self.model.started = desc.start_time
            self.model.closed = desc.close_time
            state = await self.handle.query("progress", rpc_timeout=RPC_TIMEOUT)  # compact: polled
        except RPCError as exc:
            self.model.log.append(f"status: {exc.message}")
            return
        if isinstance(state, dict):
            self.model.load_state(state)

    def _refresh_later(self) -> None:
        self.run_worker(self._refresh_and_render(), name="refresh", exclusive=True, group="refresh")

    async def _refresh_and_render(self) -> None:
        await self._refresh_state()
        self._render_side()

    async def _follow(self) -> None:
        output = self.query_one("#output", Log)
        kw = {"poll_s": self.poll_s} if self.poll_s else {}
        try:
            async for item in subscribe(self.client, self.workflow_id, **kw):  # type: ignore[arg-type]
                text = self.model.apply(item.event, item.offset)
                if text:
                    output.write(text)
                    if item.topic == "tokens":
                        for listener in self.token_listeners:
                            listener(text)
                if item.topic == "events":  # tokens and output lines change nothing in the sidebar
                    self._render_side()
        except StreamNotFound as exc:
            self.notify(str(exc), severity="error")
            return
        with contextlib.suppress(RPCError):
            await self._refresh_state()
        self._render_all()
        output.write(f"\n── {self.model.outcome or 'ended'}: press q to leave ──\n")

    def _tick(self) -> None:
        self.query_one("#status", Static).update(Text(self.model.status_line()))

    def _render_all(self) -> None:
        self._tick()
        self._render_side()

    def _render_side(self) -> None:
        m = self.model
        self._tick()
        self.query_one("#tasks-title", Static).update("tasks" if m.kind == "session" else "steps")
        # Text, not markup: what the model and the steps wrote is shown as it is.
        self.query_one("#tasks", Static).update(Text("\n".join(m.task_lines()) or "(none yet)"))
        self.query_one("#review", Static).update(Text("\n".join(m.review_lines()) or "(no verdict yet)"))
        self.query_one("#notes", Static).update(Text("\n".join(m.note_lines()) or "(none)"))

    # --- keys ----------------------------------------------------------------------------------------

    async def action_detach(self) -> None:
        self.exit(self.model.outcome or "detached")

    def action_logs(self) -> None:
        self.push_screen(LogScreen(list(self.model.log)))

    def action_sidebar(self) -> None:
        self.sidebar_open = not self.sidebar_open
        self._layout(self.size.width, self.size.height)

    def action_focus_message(self) -> None:
        self.query_one("#message", Input).focus()

    def action_blur(self) -> None:
        self.query_one("#output", Log).focus()

    @on(Input.Submitted, "#message")
    async def _send_message(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if await self._signal("message", text):
            event.input.value = ""
            self.notify("message queued for the next model call")

    async def action_pause(self) -> None:
        name = "resume" if self.model.paused else "pause"
        if await self._signal(name):
            self.model.paused = name == "pause"
            self._tick()
            self.notify("resumed" if name == "resume" else "pause requested: it takes effect at the next phase")

    async def action_cancel(self) -> None:
        def confirmed(answer: str | None) -> None:
            if answer is not None and answer.strip().lower() in ("y", "yes"):
                self.run_worker(self._cancel(), name="cancel")

        self.push_screen(AskScreen(f"Cancel {self.workflow_id}? Type y and Enter.", "y / Esc"), confirmed)

    async def _cancel(self) -> None:
        try:
            await self.handle.cancel()
            self.notify("cancel requested: the running step is stopped")
        except RPCError as exc:
            self.notify(f"cancel: {exc.message}", severity="error")

    async def action_approve(self) -> None:
        waiting = self.model.waiting_holds()
        if not waiting:
            self.notify("no step waits for a person", severity="warning")
            return
        await self._decide("approve", HoldDecision(step=waiting[0].step_id))

    async def action_deny(self) -> None:
        waiting = self.model.waiting_holds()
        if not waiting:
            self.notify("no step waits for a person", severity="warning")
            return
        step = waiting[0].step_id

        def answered(reason: str | None) -> None:
            if reason and reason.strip():
                self.run_worker(self._decide("deny", HoldDecision(step=step, reason=reason.strip())), name="deny")
            elif reason is not None:
                self.notify("a denial needs a reason: the coder reads it", severity="warning")

        self.push_screen(AskScreen(f"Deny held step {step}: why? (the coder reads it)", "reason"), answered)

    async def _decide(self, name: str, decision: HoldDecision) -> None:
        try:
            done = await self.handle.execute_update(name, decision, result_type=str, rpc_timeout=RPC_TIMEOUT)
        except WorkflowUpdateFailedError as exc:
            self.notify(f"{name}: {getattr(exc.cause, 'message', None) or exc.cause}", severity="error")
            return
        except RPCError as exc:
            self.notify(f"{name}: {exc.message}", severity="error")
            return
        self.notify(done)

    async def _signal(self, name: str, *args: Any) -> bool:
        try:
            if (await self.handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                self.notify(f"{self.workflow_id} is not running; nothing to {name}", severity="warning")
                return False
            await self.handle.signal(name, *args)
        except RPCError as exc:
            self.notify(f"{name}: {exc.message}", severity="error")
            return False
        return True


async def watch_full_screen(client: Client, workflow_id: str) -> str:
    """Run the full-screen view until the user leaves or the workflow ends and the user leaves."""
    app = WatchApp(client, workflow_id)
    result = await app.run_async()
    await asyncio.sleep(0)
    return result or "detached"
