"""What ``iter watch`` shows, kept apart from how: the status bar's fields, the task (or step) list,
the notes, held steps, verdicts and the log, built from the workflow's status query once and then
from its event stream. No I/O, no Textual: the full-screen view renders it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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

TASK_ICONS = {"in_progress": "▶", "remaining": "○", "blocked": "⛔", "completed": "✓", "cancelled": "✗"}
STEP_ICONS = {"running": "▶", "ok": "✓", "failed": "✗", "skipped": "-", "planned": "○"}
TASK_ORDER = ("in_progress", "remaining", "blocked", "completed", "cancelled")
MAX_LOG = 2000
MAX_NOTES = 200


@dataclass
class StepLine:
    step_id: str
    step_type: str
    detail: str
    status: str = "running"
    note: str = ""


@dataclass
class WatchModel:
    workflow_id: str
    kind: str = "request"  # or "session"
    name: str = ""
    branch: str = ""
    iteration: int = 0
    phase: str = "queued"
    paused: bool = False
    outcome: str = ""
    started: datetime | None = None
    closed: datetime | None = None
    tasks: dict[str, TaskChanged] = field(default_factory=dict)
    steps: dict[str, StepLine] = field(default_factory=dict)
    notes: dict[int, NoteAdded] = field(default_factory=dict)  # by seq: the stream and the query agree
    held: dict[str, StepHeld] = field(default_factory=dict)
    verdicts: dict[str, VerdictGiven] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    last_offset: int = -1

    # --- the status query: where things stand when the view opens ------------------------------

    def load_state(self, state: dict[str, Any]) -> None:
        self.kind = "session" if "tasks" in state else "request"
        self.name = state.get("name") or state.get("request_id") or self.name or self.workflow_id
        worktree = state.get("worktree")
        from_worktree = worktree.get("branch", "") if isinstance(worktree, dict) else ""
        self.branch = state.get("branch") or from_worktree or self.branch
        self.iteration = int(state.get("iteration") or self.iteration)
        self.phase = state.get("phase") or self.phase
        self.paused = bool(state.get("paused"))
        done = state.get("outcome") not in (None, "", "running") or state.get("phase") == "done"
        self.outcome = (state.get("outcome") or state.get("status") or "") if done else ""
        for t in state.get("tasks") or []:
            self.tasks[t["id"]] = TaskChanged(
                id=t["id"],
                content=t["content"],
                status=t["status"],
                priority=t.get("priority", 2),
                depends_on=t.get("depends_on") or [],
            )
        for n in (state.get("notes") or [])[-MAX_NOTES:]:
            self.notes[n["seq"]] = NoteAdded(
                seq=n["seq"], type=n["type"], content=n["content"], iteration=n.get("iteration", 0)
            )
        self._trim_notes()
        for node in state.get("tree") or []:
            step = node.get("step") or {}
            if step.get("id") and step["id"] not in {s.step_id for s in self.steps.values()}:
                detail = step.get("command") or step.get("path") or ""
                self.steps[f"plan-{step['id']}"] = StepLine(step["id"], step.get("type", ""), detail, "planned")
        for held in (state.get("holds") or {}).get("held") or []:
            resolved = "" if held["decision"] == "waiting" else held["decision"]
            reason = "; ".join(held.get("reasons") or [])
            self.held[held["step_id"]] = StepHeld(step_id=held["step_id"], reason=reason, resolved=resolved)

    # --- the stream ------------------------------------------------------------------------------

    def apply(self, event: LiveEvent, offset: int = -1) -> str:
        """Take one event in; returns what it means for the output pane ("" for nothing)."""
        self.last_offset = max(self.last_offset, offset)
        if isinstance(event, Tokens):
            return event.text
        if isinstance(event, PhaseChanged):
            self.phase = event.phase
            if event.iteration:
                self.iteration = event.iteration
            return self._logged(f"{event.phase:>9} {event.message}", output=True)
        if isinstance(event, ModelStarted):
            return self._logged(f"── {event.role} · {event.model} · {event.schema_name} ──", output=True)
        if isinstance(event, ModelEnded):
            u = event.usage
            self._logged(f"{event.role}: {u.completion_tokens} tokens, {u.tokens_per_s} tok/s")
            return "\n"
        if isinstance(event, ModelFailed):
            return self._logged(f"model {event.model}: {event.message}", output=True)
        if isinstance(event, StepStarted):
            self._plan_step_done(event.step_id)
            self.steps[event.run_key] = StepLine(event.step_id, event.step_type, event.detail)
            return self._logged(f"▶ {event.step_id} ({event.step_type}) {event.detail}", output=True)
        if isinstance(event, OutputLines):
            return "".join(f"│ {line}\n" for line in event.lines)
        if isinstance(event, StepFinished):
            self._plan_step_done(event.step_id)
            line = self.steps.get(event.run_key) or StepLine(event.step_id, "", "")
            line.status = "skipped" if event.skipped else ("ok" if event.ok else "failed")
            line.note = "timed out" if event.timed_out else (f"exit {event.exit_code}" if not event.ok else "")
            self.steps[event.run_key] = line
            return self._logged(f"{STEP_ICONS[line.status]} {event.step_id} {line.note}".rstrip(), output=True)
        if isinstance(event, VerdictGiven):
            self.verdicts[event.stage] = event
            return self._logged(f"{event.stage} verdict: {event.line()}", output=True)
        if isinstance(event, StepHeld):
            self.held[event.step_id] = event
            what = event.resolved or "waits for you: press a to approve, d to deny"
            return self._logged(f"held step {event.step_id} {what} ({event.reason})", output=True)
        if isinstance(event, TaskChanged):
            self.tasks[event.id] = event
            self._logged(f"task #{event.id} [{event.status}] {event.content}")
            return ""
        if isinstance(event, NoteAdded):
            self.notes[event.seq] = event
            self._trim_notes()
            self._logged(f"note [{event.type}] {event.content}")
            return ""
        if isinstance(event, HookRan):
            return self._logged(f"hook {event.point}: {event.command} ({event.status})", output=True)
        if isinstance(event, MessageQueued):
            return self._logged(f"message queued: {event.text}", output=True)
        if isinstance(event, PausedChanged):
            self.paused = event.paused
            return self._logged("pause requested" if event.paused else "resumed", output=True)
        if isinstance(event, Finished):
            self.phase, self.outcome = "done", event.outcome
            return self._logged(f"finished: {event.outcome} {event.message}".rstrip(), output=True)
        if isinstance(event, Notice):
            return self._logged(event.message, output=True)
        return ""

    def _trim_notes(self) -> None:
        for seq in sorted(self.notes)[:-MAX_NOTES]:
            del self.notes[seq]

    def _plan_step_done(self, step_id: str) -> None:
        self.steps.pop(f"plan-{step_id}", None)

    def _logged(self, line: str, output: bool = False) -> str:
        self.log.append(line)
        del self.log[:-MAX_LOG]
        return f"{line}\n" if output else ""

    # --- what the panes show ----------------------------------------------------------------------

    def waiting_holds(self) -> list[StepHeld]:
        return [h for h in self.held.values() if not h.resolved]

    def elapsed(self, now: datetime | None = None) -> str:
        if self.started is None:
            return "-"
        end = self.closed or now or datetime.now(UTC)
        seconds = max(int((end - self.started).total_seconds()), 0)
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"

    def status_line(self, now: datetime | None = None) -> str:
        parts = [f"iter · {self.name or self.workflow_id}"]
        parts.append(f"branch {self.branch or '-'}")
        if self.kind == "session":
            parts.append(f"iteration {self.iteration}")
        parts += [f"elapsed {self.elapsed(now)}", f"phase {self.phase}"]
        if self.outcome:
            parts.append(self.outcome)
        if self.paused:
            parts.append("⏸ PAUSED")
        if self.waiting_holds():
            parts.append(f"⚠ {len(self.waiting_holds())} held")
        return " · ".join(parts)

    def task_lines(self) -> list[str]:
        if self.kind == "session":
            ordered = sorted(
                self.tasks.values(),
                key=lambda t: (TASK_ORDER.index(t.status) if t.status in TASK_ORDER else 9, t.priority),
            )
            return [f"{TASK_ICONS.get(t.status, '•')} #{t.id} P{t.priority} {t.content}" for t in ordered]
        return [
            f"{STEP_ICONS.get(s.status, '•')} {s.step_id} ({s.step_type}) {s.note}".rstrip()
            for s in self.steps.values()
        ]

    def note_lines(self) -> list[str]:
        return [f"[{n.type}] {n.content}" for _, n in sorted(self.notes.items())[-20:]]

    def review_lines(self) -> list[str]:
        lines = [f"{stage}: {v.line()}" for stage, v in self.verdicts.items()]
        for h in self.held.values():
            lines.append(f"held {h.step_id}: {h.resolved or 'WAITING (a: approve, d: deny)'}")
        return lines
