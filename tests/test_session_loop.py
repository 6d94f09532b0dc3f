"""The iteration loop end to end: spec to tasks, one task per iteration through plan, review,
execute and verify, auto-commit, summaries, session-complete."""

from __future__ import annotations

import subprocess
from pathlib import Path

from temporalio.client import Client

from models.config import Settings
from tests import session_replies as s
from tests.fake_llm import FakeModel


async def test_spec_tasks_done_in_order_committed_and_completed(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None
) -> None:
    spec = s.write_spec(workspace)
    subprocess.run(["git", "add", spec], cwd=workspace, check=True)
    subprocess.run(
        ["git", "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "spec"], cwd=workspace, check=True
    )
    s.reviewers_pass(fake)
    fake.script(
        "session_plan",
        s.append_plan("greet.txt", "hello\n", action="create"),
        s.append_plan("greet.txt", "goodbye\n"),
        s.append_plan(
            "NOTES.md",
            "notes\n",
            action="create",
            session_complete=True,
            notes=[{"type": "learning", "content": "grep works"}],
        ),
    )
    state = await s.run_session(client, settings, s.session_input(settings, workspace))
    assert state.status == "completed", state.events[-5:]
    assert [t.content for t in state.tasks] == ["Create greet.txt", "Add a farewell", "Write the notes file"]
    assert [t.status for t in state.tasks] == ["completed"] * 3
    assert [x.outcome for x in state.summaries] == ["passed"] * 3
    assert [x.task_id for x in state.summaries] == ["1", "2", "3"]
    assert (workspace / "greet.txt").read_text() == "hello\ngoodbye\n"
    log = s.git_log(workspace)
    assert log[:3] == [
        f"iter {state.name}: task #3: Write the notes file",
        f"iter {state.name}: task #2: Add a farewell",
        f"iter {state.name}: task #1: Create greet.txt",
    ]
    shown = subprocess.run(
        ["git", "show", "--name-only", "--format=", "HEAD~2"], cwd=workspace, capture_output=True, text=True
    ).stdout
    assert shown.split() == ["greet.txt"]  # only what the iteration changed; no .iter/runs journals
    assert state.notes[-1].content == "grep works"
    assert state.prompt_tokens > 0 and state.model_calls >= 9
    prompts = [c["messages"][1]["content"] for c in fake.calls("session_plan")]
    assert "Next task: #1 [remaining]" in prompts[0] and "Next task: #2" in prompts[1]
    assert "iteration 1 task #1 [passed]" in prompts[1]
