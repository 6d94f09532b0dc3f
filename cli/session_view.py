"""How a session looks to a person: tasks by status, notes, iterations, tokens, recent events."""

from __future__ import annotations

from typing import Any

from cli.output import console

STATUS_ORDER = ("in_progress", "remaining", "blocked", "completed", "cancelled")
STATUS_MARK = {"in_progress": "▶", "remaining": "○", "blocked": "⛔", "completed": "✓", "cancelled": "✗"}
SHOWN_EVENTS = 8
SHOWN_NOTES = 5


def task_line(task: dict[str, Any]) -> str:
    deps = f"  (after {', '.join('#' + d for d in task.get('depends_on') or [])})" if task.get("depends_on") else ""
    mark = STATUS_MARK.get(task["status"], "•")
    return f"{mark} #{task['id']} P{task['priority']} {task['content']}{deps}"


def print_tasks(tasks: list[dict[str, Any]]) -> None:
    if not tasks:
        console.print("no tasks")
        return
    for status in STATUS_ORDER:
        group = [t for t in tasks if t["status"] == status]
        if group:
            console.print(f"[bold]{status}[/bold] ({len(group)})", markup=True)
            for task in sorted(group, key=lambda t: (t["priority"], t["seq"])):
                console.print(f"  {task_line(task)}", markup=False)


def print_notes(notes: list[dict[str, Any]]) -> None:
    if not notes:
        console.print("no notes")
    for note in notes:
        console.print(f"[{note['type']}] (iteration {note['iteration']}) {note['content']}", markup=False)


def headline(workflow_status: str, state: dict[str, Any]) -> str:
    paused = f"  [yellow]{state.get('pause') or 'paused'}[/yellow]" if state.get("paused") else ""
    return (
        f"[bold]session {state.get('name', '?')}[/bold]  workflow {workflow_status}  status {state.get('status')}  "
        f"iteration {state.get('iteration', 0)}  phase {state.get('phase')}{paused}"
    )


def print_status(workflow_status: str, state: dict[str, Any]) -> None:
    console.print(headline(workflow_status, state))
    tasks = state.get("tasks") or []
    done = sum(t["status"] == "completed" for t in tasks)
    console.print(
        f"  tasks {done}/{len(tasks)} completed · tokens {state.get('prompt_tokens', 0):,} prompt + "
        f"{state.get('completion_tokens', 0):,} answer in {state.get('model_calls', 0)} model calls · "
        f"{state.get('commits', 0)} commit(s) · run {state.get('runs', 1)}"
    )
    if state.get("error"):
        console.print(f"  [red]{state['error']}[/red]")
    print_tasks(tasks)
    notes = state.get("notes") or []
    if notes:
        console.print(f"[bold]notes[/bold] (last {min(len(notes), SHOWN_NOTES)} of {len(notes)})")
        for note in notes[-SHOWN_NOTES:]:
            console.print(f"  [{note['type']}] (iteration {note['iteration']}) {note['content']}", markup=False)
    pending = state.get("pending_messages") or []
    if pending:
        console.print(f"  {len(pending)} message(s) queued for the next iteration")
    for event in (state.get("events") or [])[-SHOWN_EVENTS:]:
        console.print(f"  [cyan]{event['phase']:>9}[/cyan] [{event['iteration']}] {event['message']}", markup=True)


def print_event(event: dict[str, Any]) -> None:
    console.print(f"[cyan]{event['phase']:>9}[/cyan] [{event['iteration']}] ", end="")
    console.print(event["message"], markup=False)


def print_end(state: dict[str, Any]) -> None:
    tasks = state.get("tasks") or []
    done = sum(t["status"] == "completed" for t in tasks)
    console.print(
        f"\nSession {state.get('name')} {state.get('status')} after {state.get('iteration', 0)} iteration(s): "
        f"{done}/{len(tasks)} tasks completed, {state.get('commits', 0)} commit(s), "
        f"{state.get('prompt_tokens', 0) + state.get('completion_tokens', 0):,} tokens"
    )
