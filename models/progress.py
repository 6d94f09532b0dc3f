"""Where a request or a session stands, in a few kilobytes: what a viewer polls (the workflows'
``progress`` query). The ``status`` query returns the whole state, with every step's output, every
model call's usage and the event log: fine once, for ``iter status ID`` or ``--json``, but a view
that refreshes every couple of seconds would move it across the wire each time. The progress has
the same keys as the state it comes from, so a reader of one reads the other; what it leaves out
it counts (``steps_run``, ``model_calls``). Pure: the workflows' query handlers call it."""

from __future__ import annotations

from typing import Any

from models.clip import clip_middle
from models.plan import iter_nodes
from models.request import RequestState
from models.session import SessionState

RECENT_EVENTS = 10
NOTES_SHOWN = 20
TEXT_CAP = 300  # a task's content, a note, an error: enough for a line on screen


def _step_line(step: Any) -> dict[str, Any]:
    """A step as a viewer lists it: what it is, never its file content."""
    return step.model_dump(mode="json", include={"id", "type", "command", "path", "action"})  # type: ignore[no-any-return]


def request_progress(state: RequestState) -> dict[str, Any]:
    view = state.model_dump(
        mode="json",
        include={
            "workflow_id", "run_id", "project", "request_id", "phase", "outcome", "paused", "summary",
            "safety_verdict", "verify_verdict", "parse_repairs", "block_replans", "fix_rounds", "info_rounds",
            "holds", "sandbox", "landing",
        },
    )  # fmt: skip
    view["error"] = clip_middle(state.error, TEXT_CAP)
    view["tree"] = [{"step": _step_line(n.step), "depth": n.depth} for n in iter_nodes(state.tree)]
    view["events"] = [e.model_dump(mode="json") for e in state.events[-RECENT_EVENTS:]]
    view["steps_run"], view["model_calls"] = len(state.results), len(state.usage)
    return view


def session_progress(state: SessionState) -> dict[str, Any]:
    view = state.model_dump(
        mode="json",
        include={
            "workflow_id", "name", "status", "phase", "paused", "stop_requested", "complete", "iteration",
            "build_iterations", "runs", "notes_dropped", "commits", "holds", "sandbox", "landing",
        },
    )  # fmt: skip
    view["error"] = clip_middle(state.error, TEXT_CAP)
    view["tasks"] = [
        {**t.model_dump(mode="json", exclude={"content"}), "content": clip_middle(t.content, TEXT_CAP)}
        for t in state.tasks
    ]
    view["notes"] = [
        {**n.model_dump(mode="json", exclude={"content"}), "content": clip_middle(n.content, TEXT_CAP)}
        for n in state.notes[-NOTES_SHOWN:]
    ]
    view["current"] = state.current.model_dump(mode="json")
    view["events"] = [e.model_dump(mode="json") for e in state.events[-RECENT_EVENTS:]]
    view["model_calls"] = state.model_calls
    return view
