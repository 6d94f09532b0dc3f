"""Sessions: tasks, notes, iteration summaries and the session's state, with the pure logic that
both the workflow's updates and the model's plan go through (one code path for both).

Everything here is deterministic and free of I/O, so the workflow imports it directly: the task
graph (next task, dependency checks, cycles), session-complete validation and the spec's checkbox
items. The trimming that keeps a growing session's prompt within a budget is in session_text.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.clip import clip_middle
from models.holds import HoldState
from models.plan import Plan, Step
from models.worktree import LandOutput, Sandbox

TaskStatus = Literal["remaining", "in_progress", "completed", "blocked", "cancelled"]
TASK_STATUSES: tuple[str, ...] = get_args(TaskStatus)
DONE_STATUSES = ("completed", "blocked", "cancelled")  # what session-complete accepts
NoteType = Literal["learning", "stuck", "tip", "decision"]
NOTE_TYPES: tuple[str, ...] = get_args(NoteType)
HookPoint = Literal["session_start", "pre_iteration", "post_iteration", "session_end", "on_task_complete", "on_error"]
HOOK_POINTS: tuple[str, ...] = get_args(HookPoint)
SessionStatus = Literal["running", "completed", "stopped", "limit", "failed", "cancelled"]
IterationOutcome = Literal["passed", "failed", "blocked", "planned", "error"]
Source = Literal["spec", "user", "model", "session"]

T = TypeVar("T")

DEFAULT_PRIORITY = 2
PRIORITY_NAMES = {0: "critical", 1: "high", 2: "medium", 3: "low", 4: "backlog"}
# The state rides along every continue_as_new and into every prompt input: it stays well under
# Temporal's payload limits (2 MB hard, 256 KB asked of every payload here), windowed by count
# and by characters. History keeps everything that was dropped.
MAX_NOTES_KEPT = 200
NOTES_BUDGET_CHARS = 48_000
MAX_SUMMARIES_KEPT = 200
SUMMARIES_BUDGET_CHARS = 32_000
MAX_EVENTS_KEPT = 100
EVENT_CHARS = 300
MAX_HOOK_REPORTS_KEPT = 20
HOOK_REPORT_CHARS = 1000  # of each kept report's output; the whole (capped) output is in history
MAX_PENDING_TEXT = 50  # queued messages / hook outputs / feedback lines kept until the next prompt
PENDING_TEXT_CHARS = 4000
PENDING_BUDGET_CHARS = 16_000
MAX_TASKS = 1000
OPEN_TASKS_BUDGET_CHARS = 96_000
DONE_TASK_CHARS = 200  # a task done needs no more than its gist in the state


class ToolError(ValueError):
    """A tool operation that cannot be applied; the message is one line a person or a model can act on."""


# --- the records -------------------------------------------------------------------------------


class Task(BaseModel):
    id: str
    seq: int = Field(description="Creation order: ties in priority go to the older task")
    content: str
    status: TaskStatus = "remaining"
    priority: int = Field(default=DEFAULT_PRIORITY, ge=0, le=4)
    depends_on: list[str] = Field(default_factory=list)
    source: Source = "user"
    created_iteration: int = 0
    updated_iteration: int = 0

    def line(self) -> str:
        deps = f" (after {', '.join('#' + d for d in self.depends_on)})" if self.depends_on else ""
        return f"#{self.id} [{self.status}] P{self.priority} {self.content}{deps}"


class Note(BaseModel):
    seq: int
    type: NoteType
    content: str
    iteration: int = 0
    source: Source = "user"


class IterationSummary(BaseModel):
    iteration: int
    summary: str
    outcome: IterationOutcome | Literal["note"] = "note"
    task_id: str | None = None
    commit: str = ""
    files: list[str] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    source: Source = "session"


class Hook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1)
    timeout: float = Field(default=30.0, gt=0, le=86_400)
    pipe_output: bool = False


class HooksConfig(BaseModel):
    """``.iter/hooks.yml``, iteratr's format: ``version: 1`` and ``hooks: {point: [hook, ...]}``."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    hooks: dict[HookPoint, list[Hook]] = Field(default_factory=dict)

    def at(self, point: str) -> list[Hook]:
        return list(self.hooks.get(point, []))  # type: ignore[call-overload]


class HookReport(BaseModel):
    point: str
    command: str
    exit_code: int | None = None
    timed_out: bool = False
    output: str = ""
    duration_s: float = 0.0
    error: str = ""
    iteration: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.error


class SessionEvent(BaseModel):
    seq: int
    iteration: int
    phase: str
    message: str


# --- the operations (tool updates and the model's plan share them) ----------------------------


class NewTask(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=2000)
    priority: int = Field(default=DEFAULT_PRIORITY, ge=0, le=4, description="0 critical .. 4 backlog")
    depends_on: list[str] = Field(default_factory=list, description="Ids of tasks that must be completed first")
    status: TaskStatus = "remaining"

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("task content is empty")
        return value.strip()


class TaskStatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    status: TaskStatus


class TaskPriorityChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    priority: int = Field(ge=0, le=4)


class TaskDependency(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The task that waits")
    depends_on: str = Field(description="The task it waits for")


class NewNote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: NoteType
    content: str = Field(min_length=1, max_length=4000)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("note content is empty")
        return value.strip()


class NewSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=1, max_length=4000)


class SessionPlan(Plan):
    """The coder's answer in a session iteration: a request plan (which may be empty when the
    iteration only manages tasks) plus the same operations the ``iter tool`` commands perform."""

    model_config = ConfigDict(extra="forbid", title="session_plan")

    steps: list[Step] = Field(default_factory=list)  # type: ignore[assignment]
    task_id: str | None = Field(default=None, description="The task these steps work on")
    new_tasks: list[NewTask] = Field(default_factory=list)
    task_updates: list[TaskStatusChange] = Field(default_factory=list)
    task_dependencies: list[TaskDependency] = Field(default_factory=list)
    notes: list[NewNote] = Field(default_factory=list)
    session_complete: bool = Field(default=False, description="Every task is completed, blocked or cancelled")


# --- the state ---------------------------------------------------------------------------------


class IterationView(BaseModel):
    """The iteration in progress, for people watching; replaced by the next one."""

    iteration: int = 0
    task_id: str | None = None
    summary: str = ""
    steps: list[str] = Field(default_factory=list)
    results: list[str] = Field(default_factory=list)
    verdict: str = ""


class BlockStreak(BaseModel):
    """How a task was last blocked, and how many times in a row that way."""

    way: str
    count: int = 1


class SessionState(BaseModel):
    workflow_id: str = ""
    uid: str = Field(default="", description="Stable across continue_as_new and resumes; new on --reset")
    name: str = ""
    spec_path: str = ""
    workspace: str = ""
    status: SessionStatus = "running"
    phase: str = "starting"
    paused: bool = False
    stop_requested: bool = False
    complete: bool = False
    iteration: int = 0
    build_iterations: int = Field(default=0, description="Iterations run by the current `iter build`")
    runs: int = 1
    tasks: list[Task] = Field(default_factory=list)
    next_seq: int = 1
    notes: list[Note] = Field(default_factory=list)
    note_seq: int = 0
    notes_dropped: int = Field(default=0, description="Older notes out of the window (history has them)")
    summaries: list[IterationSummary] = Field(default_factory=list)
    summaries_dropped: int = 0
    pending_messages: list[str] = Field(default_factory=list)
    pending_hook_output: list[str] = Field(default_factory=list)
    feedback: list[str] = Field(default_factory=list)
    completed_unhooked: list[str] = Field(default_factory=list, description="Completed tasks awaiting on_task_complete")
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    hook_reports: list[HookReport] = Field(default_factory=list)
    git_on: bool = Field(default=False, description="Auto-commit is on and the workspace is a git repository")
    dirty_baseline: dict[str, str] = Field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    commits: int = 0
    consecutive_errors: int = 0
    block_streaks: dict[str, BlockStreak] = Field(default_factory=dict, description="task id -> its blocks in a row")
    current: IterationView = Field(default_factory=IterationView)
    holds: HoldState = Field(default_factory=HoldState)
    events: list[SessionEvent] = Field(default_factory=list)
    event_seq: int = 0
    error: str = ""
    sandbox: Sandbox | None = Field(default=None, description="Where the steps run: the session's own worktree")
    landing: LandOutput | None = Field(default=None, description="How the change reached the checkout, if it did")

    @property
    def journal_key(self) -> str:
        """Where step journals live: stable across continue_as_new, so a retried step is found."""
        return f"{self.workflow_id}.{self.uid}"

    def task(self, task_id: str) -> Task | None:
        return next((t for t in self.tasks if t.id == task_id), None)


# --- the task graph ----------------------------------------------------------------------------


def _find(state: SessionState, task_id: str) -> Task:
    task = state.task(str(task_id))
    if task is None:
        raise ToolError(f"no task #{task_id}; `iter tool task-list` shows the tasks")
    return task


def next_task(tasks: list[Task]) -> Task | None:
    """The remaining task whose dependencies are all completed: lowest priority number first,
    ties in creation order (``seq``, never the id's string order)."""
    done = {t.id for t in tasks if t.status == "completed"}
    ready = [t for t in tasks if t.status == "remaining" and all(d in done for d in t.depends_on)]
    return min(ready, key=lambda t: (t.priority, t.seq), default=None)


def check_new_tasks(state: SessionState, items: list[NewTask]) -> None:
    """Dependencies must name existing tasks, or tasks earlier in the same batch (their ids are the
    next numbers), so a batch can never create a cycle. The task list is bounded."""
    if len(state.tasks) + len(items) > MAX_TASKS:
        raise ToolError(f"the session has {len(state.tasks)} tasks, at most {MAX_TASKS}; cancel or merge some first")
    open_chars = sum(len(t.content) for t in open_tasks(state.tasks)) + sum(len(i.content) for i in items)
    if open_chars > OPEN_TASKS_BUDGET_CHARS:
        raise ToolError(
            f"the open tasks would hold {open_chars:,} characters, at most {OPEN_TASKS_BUDGET_CHARS:,}; "
            "finish, cancel or shorten tasks first"
        )
    known = {t.id for t in state.tasks}
    for offset, item in enumerate(items):
        for dep in item.depends_on:
            if dep not in known:
                where = f"task {offset + 1} of the batch" if len(items) > 1 else "the new task"
                raise ToolError(f"{where} depends on #{dep}, which does not exist")
        known.add(str(state.next_seq + offset))


def add_tasks(state: SessionState, items: list[NewTask], iteration: int, source: Source) -> list[Task]:
    check_new_tasks(state, items)
    added = []
    for item in items:
        task = Task(
            id=str(state.next_seq),
            seq=state.next_seq,
            content=item.content,
            status=item.status,
            priority=item.priority,
            depends_on=list(dict.fromkeys(item.depends_on)),
            source=source,
            created_iteration=iteration,
            updated_iteration=iteration,
        )
        state.next_seq += 1
        state.tasks.append(task)
        added.append(task)
        if task.status == "completed":
            state.completed_unhooked.append(task.id)
    return added


def check_status(state: SessionState, change: TaskStatusChange) -> None:
    _find(state, change.id)


def set_status(state: SessionState, change: TaskStatusChange, iteration: int) -> Task:
    task = _find(state, change.id)
    if task.status != "completed" and change.status == "completed":
        state.completed_unhooked.append(task.id)
    task.status, task.updated_iteration = change.status, iteration
    if change.status in DONE_STATUSES:
        task.content = clip_middle(task.content, DONE_TASK_CHARS)
    return task


def check_priority(state: SessionState, change: TaskPriorityChange) -> None:
    _find(state, change.id)


def set_priority(state: SessionState, change: TaskPriorityChange, iteration: int) -> Task:
    task = _find(state, change.id)
    task.priority, task.updated_iteration = change.priority, iteration
    return task


def dependency_path(tasks: list[Task], start: str, goal: str) -> list[str] | None:
    """A path start -> ... -> goal following ``depends_on`` edges, if there is one."""
    edges = {t.id: t.depends_on for t in tasks}
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        if node == goal:
            return path
        if node in seen:
            continue
        seen.add(node)
        stack.extend((nxt, [*path, nxt]) for nxt in edges.get(node, []))
    return None


def check_dependency(state: SessionState, dep: TaskDependency) -> None:
    task, other = _find(state, dep.id), _find(state, dep.depends_on)
    if task.id == other.id:
        raise ToolError(f"task #{task.id} cannot depend on itself")
    path = dependency_path(state.tasks, other.id, task.id)
    if path is not None:
        cycle = " -> ".join(f"#{p}" for p in [task.id, *path])
        raise ToolError(f"#{task.id} depending on #{other.id} would make a cycle ({cycle})")


def add_dependency(state: SessionState, dep: TaskDependency, iteration: int) -> Task:
    check_dependency(state, dep)
    task = _find(state, dep.id)
    if dep.depends_on not in task.depends_on:
        task.depends_on.append(dep.depends_on)
    task.updated_iteration = iteration
    return task


def add_note(state: SessionState, note: NewNote, iteration: int, source: Source) -> Note:
    state.note_seq += 1
    record = Note(seq=state.note_seq, type=note.type, content=note.content, iteration=iteration, source=source)
    state.notes.append(record)
    state.notes_dropped += window(state.notes, MAX_NOTES_KEPT, NOTES_BUDGET_CHARS, lambda n: len(n.content))
    return record


def add_summary(state: SessionState, summary: IterationSummary) -> IterationSummary:
    state.summaries.append(summary)
    state.summaries_dropped += window(
        state.summaries,
        MAX_SUMMARIES_KEPT,
        SUMMARIES_BUDGET_CHARS,
        lambda x: len(x.summary) + sum(len(f) for f in x.files),
    )
    return summary


def window(items: list[T], count: int, budget: int, size: Callable[[T], int]) -> int:
    """Drops the oldest items until at most ``count`` remain within ``budget``; returns how many
    went. The newest item always stays."""
    total = sum(size(i) for i in items)
    dropped = 0
    while len(items) > 1 and (len(items) > count or total > budget):
        total -= size(items.pop(0))
        dropped += 1
    return dropped


def open_tasks(tasks: list[Task]) -> list[Task]:
    return [t for t in tasks if t.status not in DONE_STATUSES]


def check_complete(state: SessionState) -> None:
    left = open_tasks(state.tasks)
    if left:
        shown = "; ".join(t.line() for t in left[:3]) + (f"; and {len(left) - 3} more" if len(left) > 3 else "")
        raise ToolError(f"session-complete refused: {len(left)} task(s) not completed, blocked or cancelled ({shown})")


def push_bounded(items: list[str], text: str) -> None:
    items.append(clip_middle(text, PENDING_TEXT_CHARS))
    window(items, MAX_PENDING_TEXT, PENDING_BUDGET_CHARS, len)


# --- the spec ----------------------------------------------------------------------------------

CHECKBOX = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\[([ xX])\]\s+(\S.*?)\s*$")


def spec_tasks(spec: str) -> list[NewTask]:
    """The spec's checkbox items in order; ``[x]`` items arrive completed."""
    items = []
    for line in spec.splitlines():
        match = CHECKBOX.match(line)
        if match:
            status = "completed" if match.group(1) in "xX" else "remaining"
            items.append(NewTask(content=match.group(2)[:2000], status=status))  # type: ignore[arg-type]
    return items
