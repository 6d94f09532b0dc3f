"""The session's state as people and the model change it: the ``iter tool`` updates (each with a
validator, so a refusal never reaches history as a failed workflow task), the signals, the queries,
and the model's own task and note operations, which go through the same functions as the tools.

``SessionTools`` is a base class of ``SessionWorkflow``: Temporal registers the handlers defined
here as the workflow's own; pause, resume, approve and deny come from ``Controls``, which the
request workflow shares. It also keeps the event log and the search attributes, which both the
handlers and the process write. Deterministic: no I/O here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.controls import Controls
from workflows.phases import publish

with workflow.unsafe.imports_passed_through():
    from models.events import MessageQueued, NoteAdded, PhaseChanged, TaskChanged
    from models.progress import session_progress
    from models.session import (
        EVENT_CHARS,
        MAX_EVENTS_KEPT,
        IterationSummary,
        NewNote,
        NewSummary,
        NewTask,
        Note,
        SessionEvent,
        SessionPlan,
        SessionState,
        Task,
        TaskDependency,
        TaskPriorityChange,
        TaskStatusChange,
        ToolError,
        add_dependency,
        add_note,
        add_summary,
        add_tasks,
        check_complete,
        check_dependency,
        check_new_tasks,
        check_priority,
        check_status,
        next_task,
        push_bounded,
        set_priority,
        set_status,
    )

T = TypeVar("T")


MAX_REFUSALS_SHOWN = 5  # refused operations of one plan printed one by one; more are counted


class SessionTools(Controls):
    state: SessionState
    _shown_tasks: dict[str, tuple[object, ...]]  # what the stream last said of each task
    _shown_notes: int  # the last note seq the stream carries

    # --- events, the live stream and search attributes ---------------------------------------------

    def _phase(self, phase: str, message: str) -> None:
        self.state.phase = phase
        self.details.phase, self.details.message, self.details.iteration = phase, message, self.state.iteration
        self._show_details()

    def _event(self, phase: str, message: str) -> None:
        st = self.state
        st.event_seq += 1
        st.events.append(
            SessionEvent(seq=st.event_seq, iteration=st.iteration, phase=phase, message=message[:EVENT_CHARS])
        )
        del st.events[:-MAX_EVENTS_KEPT]
        self.live.publish(PhaseChanged(phase=phase, message=message[:500], iteration=st.iteration))
        self._phase(phase, message)
        self._sync_view()

    def _sync_view(self) -> None:
        """Tasks and notes that changed since the stream last said: whoever changed them (the
        model's plan, a tool, the loop), viewers see it."""
        for t in self.state.tasks:
            shown = (t.content, t.status, t.priority, tuple(t.depends_on))
            if self._shown_tasks.get(t.id) != shown:
                self._shown_tasks[t.id] = shown
                self.live.publish(
                    TaskChanged(
                        id=t.id, content=t.content, status=t.status, priority=t.priority, depends_on=t.depends_on
                    )
                )
        for n in self.state.notes:
            if n.seq > self._shown_notes:
                self._shown_notes = n.seq
                self.live.publish(NoteAdded(seq=n.seq, type=n.type, content=n.content[:2000], iteration=n.iteration))

    def _applied(self, apply: Callable[[], T]) -> T:
        out = _applied(apply)
        self._sync_view()
        return out

    def _publish(self) -> None:
        publish(self.state.name, "done" if self.state.phase == "done" else "session", self.state.status)

    def _open(self) -> None:
        if self.state.phase == "done":
            raise ToolError(f"session {self.state.name} has ended; `iter build --name {self.state.name}` resumes it")

    # --- the model's operations ----------------------------------------------------------------------

    def _apply_ops(self, plan: SessionPlan, n: int) -> bool:
        """The model's operations, through the same code as the ``iter tool`` updates; a refused one
        is told to the next iteration. Returns whether anything changed."""
        st = self.state
        changed = False
        added = 0
        refused: list[str] = []
        ops: list[tuple[str, object]] = [
            *(("add", t) for t in plan.new_tasks),
            *(("dep", d) for d in plan.task_dependencies),
            *(("status", s) for s in plan.task_updates),
            *(("note", x) for x in plan.notes),
        ]
        for kind, op in ops:
            try:
                if kind == "add":
                    add_tasks(st, [op], n, "model")  # type: ignore[list-item]
                    added += 1
                elif kind == "dep":
                    add_dependency(st, op, n)  # type: ignore[arg-type]
                elif kind == "status":
                    set_status(st, op, n)  # type: ignore[arg-type]
                else:
                    add_note(st, op, n, "model")  # type: ignore[arg-type]
                changed = True
            except ToolError as exc:
                push_bounded(st.feedback, f"refused {kind} operation: {exc}")
                refused.append(f"refused {kind} operation: {exc}")
        if plan.new_tasks:
            left_out = len(plan.new_tasks) - added
            self._event("plan", f"{added} new task(s)" + (f", {left_out} refused" if left_out else ""))
        # Every refusal reaches the screen with its reason (a few; the rest counted).
        for line in refused[:MAX_REFUSALS_SHOWN]:
            self._event("plan", line)
        if len(refused) > MAX_REFUSALS_SHOWN:
            self._event("plan", f"... and {len(refused) - MAX_REFUSALS_SHOWN} more refused operation(s)")
        return changed or plan.session_complete

    # --- updates: the tools ----------------------------------------------------------------------

    @workflow.update
    def task_add(self, item: NewTask) -> Task:
        return self._applied(lambda: add_tasks(self.state, [item], self.state.iteration, "user")[0])

    @task_add.validator
    def _check_task_add(self, item: NewTask) -> None:
        self._open()
        check_new_tasks(self.state, [item])

    @workflow.update
    def task_batch_add(self, items: list[NewTask]) -> list[Task]:
        return self._applied(lambda: add_tasks(self.state, items, self.state.iteration, "user"))

    @task_batch_add.validator
    def _check_task_batch_add(self, items: list[NewTask]) -> None:
        self._open()
        if not items:
            raise ToolError("no tasks given")
        check_new_tasks(self.state, items)

    @workflow.update
    def task_status(self, change: TaskStatusChange) -> Task:
        return self._applied(lambda: set_status(self.state, change, self.state.iteration))

    @task_status.validator
    def _check_task_status(self, change: TaskStatusChange) -> None:
        self._open()
        check_status(self.state, change)

    @workflow.update
    def task_priority(self, change: TaskPriorityChange) -> Task:
        return self._applied(lambda: set_priority(self.state, change, self.state.iteration))

    @task_priority.validator
    def _check_task_priority(self, change: TaskPriorityChange) -> None:
        self._open()
        check_priority(self.state, change)

    @workflow.update
    def task_depends(self, dep: TaskDependency) -> Task:
        return self._applied(lambda: add_dependency(self.state, dep, self.state.iteration))

    @task_depends.validator
    def _check_task_depends(self, dep: TaskDependency) -> None:
        self._open()
        check_dependency(self.state, dep)

    @workflow.update
    def note_add(self, note: NewNote) -> Note:
        return self._applied(lambda: add_note(self.state, note, self.state.iteration, "user"))

    @note_add.validator
    def _check_note_add(self, note: NewNote) -> None:
        self._open()

    @workflow.update
    def iteration_summary(self, item: NewSummary) -> IterationSummary:
        record = IterationSummary(iteration=self.state.iteration, summary=item.summary, source="user")
        return self._applied(lambda: add_summary(self.state, record))

    @iteration_summary.validator
    def _check_iteration_summary(self, item: NewSummary) -> None:
        self._open()

    @workflow.update
    def session_complete(self) -> str:
        def apply() -> str:
            check_complete(self.state)
            self.state.complete = True
            self._event("iteration", "session-complete accepted; the session ends after the current iteration")
            return f"session {self.state.name} is complete; it ends after the current iteration"

        return self._applied(apply)

    @session_complete.validator
    def _check_session_complete(self) -> None:
        self._open()
        check_complete(self.state)

    # --- signals and queries ---------------------------------------------------------------------

    @workflow.signal
    def message(self, text: str) -> None:
        push_bounded(self.state.pending_messages, text[:20_000])
        self.live.publish(MessageQueued(text=text[:2000]))
        self._event("message", f"message queued for iteration {self.state.iteration + 1}")

    @workflow.signal
    def stop(self) -> None:
        """No new iteration starts; the current one finishes (a paused session resumes to finish it)."""
        self.state.stop_requested = True
        self._paused(False)
        self._event("stop", "stop requested; the session ends after the current iteration")

    @workflow.query
    def status(self) -> SessionState:
        return self.state

    @workflow.query
    def progress(self) -> dict[str, Any]:
        """Where the session stands, compact (models/progress.py): what viewers poll."""
        return session_progress(self.state)

    @workflow.query
    def task_list(self) -> list[Task]:
        return self.state.tasks

    @workflow.query
    def task_next(self) -> Task | None:
        return next_task(self.state.tasks)

    @workflow.query
    def note_list(self, note_type: str = "") -> list[Note]:
        return [n for n in self.state.notes if not note_type or n.type == note_type]


def _applied(apply: Callable[[], T]) -> T:
    """An update handler's work; a refusal becomes an update failure, never a failed workflow task."""
    try:
        return apply()
    except ToolError as exc:
        raise ApplicationError(str(exc), type="ToolError", non_retryable=True) from None
