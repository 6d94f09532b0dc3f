"""The bounded text of a session's prompt: each section (tasks, notes, history, lines) cut to its
share of the budget, newest and most useful first, always saying what was left out."""

from __future__ import annotations

from typing import get_args

from models.clip import clip_middle
from models.session import NOTE_TYPES, TASK_STATUSES, IterationOutcome, IterationSummary, Note, Task, next_task


def _fill(lines: list[str], limit: int) -> tuple[list[str], int]:
    """As many of ``lines`` as fit in ``limit`` characters; returns them and how many were left out."""
    kept, used = [], 0
    for line in lines:
        if used + len(line) + 1 > limit:
            break
        kept.append(line)
        used += len(line) + 1
    return kept, len(lines) - len(kept)


def render_tasks(tasks: list[Task], limit: int) -> str:
    """Open tasks in the order they will be picked, then the finished ones, newest first; when it
    does not fit, finished tasks are counted instead of listed before any open task is cut."""
    if not tasks:
        return "(no tasks yet)"
    nxt = next_task(tasks)
    order = {"in_progress": 0, "remaining": 1, "blocked": 2, "completed": 3, "cancelled": 4}
    active = sorted(
        [t for t in tasks if t.status in ("in_progress", "remaining", "blocked")],
        key=lambda t: (order[t.status], t.priority, t.seq),
    )
    finished = sorted([t for t in tasks if t.status in ("completed", "cancelled")], key=lambda t: -t.seq)
    head = [f"Next task: {nxt.line()}" if nxt else "Next task: none is ready"]
    counts = ", ".join(f"{sum(t.status == s for t in tasks)} {s}" for s in TASK_STATUSES)
    head.append(f"Totals: {counts}")
    budget = max(limit - sum(len(x) + 1 for x in head) - 80, 0)
    shown_active, cut_active = _fill([t.line() for t in active], budget)
    budget -= sum(len(x) + 1 for x in shown_active)
    shown_done, cut_done = _fill([t.line() for t in finished], budget)
    lines = [*head, *shown_active]
    if cut_active:
        lines.append(f"[... {cut_active} more open tasks not shown ...]")
    lines += shown_done
    if cut_done:
        lines.append(f"[... {cut_done} older finished tasks not shown ...]")
    return clip_middle("\n".join(lines), limit)


def render_notes(notes: list[Note], limit: int) -> str:
    """The newest notes that fit, oldest first; older ones are counted by type."""
    if not notes:
        return "(no notes yet)"
    lines = [f"- [{n.type}] (iteration {n.iteration}) {n.content}" for n in reversed(notes)]
    kept, dropped = _fill(lines, max(limit - 100, 0))
    out = list(reversed(kept))
    if dropped:
        older = notes[: len(notes) - len(kept)]
        by_type = ", ".join(
            f"{sum(n.type == t for n in older)} {t}" for t in NOTE_TYPES if any(n.type == t for n in older)
        )
        out.insert(0, f"[{dropped} older notes not shown: {by_type}]")
    return clip_middle("\n".join(out), limit)


def render_history(summaries: list[IterationSummary], dropped_before: int, limit: int) -> str:
    """The latest iteration summaries that fit; earlier ones are summarised as counts."""
    if not summaries:
        return "(this is the first iteration)"
    lines = []
    for s in reversed(summaries):
        task = f" task #{s.task_id}" if s.task_id else ""
        commit = f" commit {s.commit[:10]}" if s.commit else ""
        lines.append(f"- iteration {s.iteration}{task} [{s.outcome}]{commit}: {s.summary}")
    kept, dropped = _fill(lines, max(limit - 100, 0))
    out = list(reversed(kept))
    earlier = summaries[: len(summaries) - len(kept)]
    if dropped or dropped_before:
        outcomes = ", ".join(
            f"{sum(s.outcome == o for s in earlier)} {o}"
            for o in get_args(IterationOutcome)
            if any(s.outcome == o for s in earlier)
        )
        out.insert(
            0, f"[{dropped + dropped_before} earlier entries not shown" + (f": {outcomes}" if outcomes else "") + "]"
        )
    return clip_middle("\n".join(out), limit)


def render_lines(items: list[str], limit: int) -> str:
    """Queued messages or hook output: the newest that fit, each cut to a fair share."""
    if not items:
        return ""
    share = max(limit // max(len(items), 1), 200)
    kept, dropped = _fill([clip_middle(x, share) for x in reversed(items)], limit)
    out = list(reversed(kept))
    if dropped:
        out.insert(0, f"[{dropped} older entries not shown]")
    return "\n".join(out)
