"""The pure session logic: the task graph, session-complete, the spec's checkboxes, the prompt budget."""

from __future__ import annotations

import pytest

from models.session import (
    DONE_TASK_CHARS,
    MAX_NOTES_KEPT,
    MAX_SUMMARIES_KEPT,
    MAX_TASKS,
    NOTES_BUDGET_CHARS,
    PENDING_BUDGET_CHARS,
    IterationSummary,
    NewNote,
    NewTask,
    SessionState,
    TaskDependency,
    TaskStatusChange,
    ToolError,
    add_dependency,
    add_note,
    add_summary,
    add_tasks,
    check_complete,
    next_task,
    push_bounded,
    set_status,
    spec_tasks,
)
from models.session_text import render_history, render_notes, render_tasks


def state_with(*contents: str, **fields: object) -> SessionState:
    state = SessionState()
    add_tasks(state, [NewTask(content=c, **fields) for c in contents], 0, "user")  # type: ignore[arg-type]
    return state


def test_ties_go_to_creation_order_not_string_order() -> None:
    state = state_with(*(f"task {i}" for i in range(1, 13)))
    order = []
    while (task := next_task(state.tasks)) is not None:
        order.append(task.id)
        set_status(state, TaskStatusChange(id=task.id, status="completed"), 1)
    assert order == [str(i) for i in range(1, 13)]  # "10" after "9", not after "1"


def test_lower_priority_number_first_and_dependencies_wait() -> None:
    state = state_with("a", "b", "c", "d")
    state.tasks[2].priority = 0  # c is critical
    add_dependency(state, TaskDependency(id="3", depends_on="4"), 0)  # ... but waits for d
    assert next_task(state.tasks).id == "1"  # type: ignore[union-attr]
    state.tasks[3].priority = 1
    assert next_task(state.tasks).id == "4"  # type: ignore[union-attr]
    set_status(state, TaskStatusChange(id="4", status="completed"), 1)
    assert next_task(state.tasks).id == "3"  # type: ignore[union-attr]


def test_blocked_or_cancelled_dependency_keeps_the_task_waiting() -> None:
    state = state_with("a", "b")
    add_dependency(state, TaskDependency(id="2", depends_on="1"), 0)
    set_status(state, TaskStatusChange(id="1", status="blocked"), 1)
    assert next_task(state.tasks) is None


def test_dependency_on_missing_task_is_refused() -> None:
    state = state_with("a")
    with pytest.raises(ToolError, match="#7, which does not exist"):
        add_tasks(state, [NewTask(content="b", depends_on=["7"])], 0, "user")
    with pytest.raises(ToolError, match="no task #9"):
        add_dependency(state, TaskDependency(id="1", depends_on="9"), 0)
    assert len(state.tasks) == 1


def test_batch_may_depend_on_its_own_earlier_tasks() -> None:
    state = state_with("a")
    added = add_tasks(state, [NewTask(content="b"), NewTask(content="c", depends_on=["2", "1"])], 0, "user")
    assert [t.id for t in added] == ["2", "3"] and added[1].depends_on == ["2", "1"]
    with pytest.raises(ToolError, match="task 1 of the batch depends on #5"):
        add_tasks(state, [NewTask(content="d", depends_on=["5"]), NewTask(content="e")], 0, "user")


def test_cycles_are_refused_with_the_path() -> None:
    state = state_with("a", "b", "c")
    add_dependency(state, TaskDependency(id="2", depends_on="1"), 0)
    add_dependency(state, TaskDependency(id="3", depends_on="2"), 0)
    with pytest.raises(ToolError, match=r"cycle \(#1 -> #3 -> #2 -> #1\)"):
        add_dependency(state, TaskDependency(id="1", depends_on="3"), 0)
    with pytest.raises(ToolError, match="itself"):
        add_dependency(state, TaskDependency(id="2", depends_on="2"), 0)
    assert state.tasks[0].depends_on == []


def test_session_complete_only_when_every_task_is_done_blocked_or_cancelled() -> None:
    state = state_with("a", "b", "c")
    set_status(state, TaskStatusChange(id="1", status="completed"), 1)
    set_status(state, TaskStatusChange(id="2", status="blocked"), 1)
    with pytest.raises(ToolError, match=r"1 task\(s\) not completed.*#3 \[remaining\]"):
        check_complete(state)
    set_status(state, TaskStatusChange(id="3", status="cancelled"), 1)
    check_complete(state)


def test_completion_is_queued_once_for_the_on_task_complete_hook() -> None:
    state = state_with("a")
    set_status(state, TaskStatusChange(id="1", status="completed"), 1)
    set_status(state, TaskStatusChange(id="1", status="completed"), 2)
    assert state.completed_unhooked == ["1"]


def test_spec_checkboxes_become_tasks_in_order() -> None:
    spec = "# X\n- [ ] one\n* [x] two done\n  - [ ] nested three\n1. [ ] four\n- not a task\n- [] neither\n"
    items = spec_tasks(spec)
    assert [(t.content, t.status) for t in items] == [
        ("one", "remaining"),
        ("two done", "completed"),
        ("nested three", "remaining"),
        ("four", "remaining"),
    ]


def test_prompt_sections_stay_within_budget_as_the_session_grows() -> None:
    state = state_with(*(f"task number {i} with some words" for i in range(MAX_TASKS)))
    for i in range(MAX_TASKS * 3 // 4):
        set_status(state, TaskStatusChange(id=str(i + 1), status="completed"), i)
    for i in range(3000):
        add_note(state, NewNote(type="learning" if i % 2 else "stuck", content=f"note {i} " + "x" * 80), i, "model")
    for i in range(1, 1200):
        add_summary(state, IterationSummary(iteration=i, summary=f"did thing {i}", outcome="passed"))
    tasks = render_tasks(state.tasks, 3000)
    notes = render_notes(state.notes, 2000)
    history = render_history(state.summaries, state.summaries_dropped, 2000)
    assert len(tasks) <= 3000 and len(notes) <= 2000 and len(history) <= 2000
    assert tasks.startswith(f"Next task: #{MAX_TASKS * 3 // 4 + 1}") and "older finished tasks not shown" in tasks
    assert "note 2999" in notes and "older notes not shown" in notes
    assert "iteration 1199" in history and "earlier entries not shown" in history
    # The state itself is bounded too: windows by count and by characters.
    assert len(state.notes) == MAX_NOTES_KEPT and state.notes_dropped == 3000 - MAX_NOTES_KEPT
    assert len(state.summaries) == MAX_SUMMARIES_KEPT and state.summaries_dropped == 1199 - MAX_SUMMARIES_KEPT
    with pytest.raises(ToolError, match="at most 1000"):
        add_tasks(state, [NewTask(content="one too many")], 0, "user")


def test_the_state_window_keeps_the_newest_within_its_character_budget() -> None:
    state = SessionState()
    for i in range(40):
        add_note(state, NewNote(type="learning", content=f"{i} " + "y" * 3990), i, "model")
    assert sum(len(n.content) for n in state.notes) <= NOTES_BUDGET_CHARS
    assert state.notes[-1].content.startswith("39 ") and state.notes_dropped == 40 - len(state.notes)
    pending: list[str] = []
    for i in range(10):
        push_bounded(pending, f"hook {i} " + "z" * 20_000)
    assert sum(map(len, pending)) <= PENDING_BUDGET_CHARS and pending[-1].startswith("hook 9")
    assert "characters cut" in pending[-1]
    done = state_with("a long task " * 100)
    set_status(done, TaskStatusChange(id="1", status="completed"), 1)
    assert len(done.tasks[0].content) <= DONE_TASK_CHARS
