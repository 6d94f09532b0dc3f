"""The iteration loop end to end: spec to tasks, one task per iteration through plan, review,
execute and verify, auto-commit, summaries, session-complete."""

from __future__ import annotations

import subprocess
from pathlib import Path

from temporalio.client import Client

from models.config import Settings
from tests import replies as r
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
    (workspace / "mine.txt").write_text("the user's own unfinished work\n")
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
    committed = subprocess.run(
        ["git", "log", "--name-only", "--format="], cwd=workspace, capture_output=True, text=True
    )
    assert "mine.txt" not in committed.stdout.split()  # the user's own uncommitted work stays theirs
    assert state.notes[-1].content == "grep works"
    assert state.prompt_tokens > 0 and state.model_calls >= 9
    prompts = [c["messages"][1]["content"] for c in fake.calls("session_plan")]
    assert "Next task: #1 [remaining]" in prompts[0] and "Next task: #2" in prompts[1]
    assert "iteration 1 task #1 [passed]" in prompts[1]


async def test_blocked_plan_runs_nothing_and_its_reasons_reach_the_next_prompt(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None
) -> None:
    s.reviewers_pass(fake)
    fake.script("safety_review", r.safety_block(2, "s1", "it deletes everything"))
    fake.script(
        "session_plan",
        s.append_plan("a.txt", "first\n", action="create"),
        s.append_plan("a.txt", "second\n", action="create", session_complete=True),
    )
    spec = s.write_spec(workspace, "# One\n- [ ] the task\n")
    state = await s.run_session(client, settings, s.session_input(settings, workspace, spec))
    assert [x.outcome for x in state.summaries] == ["blocked", "passed"]
    assert (workspace / "a.txt").read_text() == "second\n"  # nothing of the blocked plan ran
    assert state.notes[0].type == "stuck" and "it deletes everything" in state.notes[0].content
    second = fake.calls("session_plan")[1]["messages"][1]["content"]
    assert "What went wrong last time" in second and "it deletes everything" in second
    assert "Next task: #1 [remaining]" in second  # the blocked task went back to the list
    assert len([x for x in s.git_log(workspace) if x.startswith("iter ")]) == 1


async def test_failed_verification_gets_a_reviewed_fix_round(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None
) -> None:
    fake.default("safety_review", r.safety_pass())
    fake.script("post_review", r.post_fail(r.write("fix", "a.txt", "right\n", "modify")), r.post_pass())
    fake.script(
        "session_plan",
        s.session_plan(r.write("s1", "a.txt", "wrong\n"), r.verify("s2", "grep -q right a.txt"), session_complete=True),
    )
    spec = s.write_spec(workspace, "# One\n- [ ] write right\n")
    state = await s.run_session(client, settings, s.session_input(settings, workspace, spec))
    assert state.status == "completed" and state.summaries[0].outcome == "passed"
    assert (workspace / "a.txt").read_text() == "right\n"
    assert state.current.results == ["s1 ok", "s2 FAILED", "f1-fix ok", "s2 ok"]
    assert len(fake.calls("safety_review")) == 2  # the fix was reviewed with its re-run check


async def test_invalid_answers_are_repaired_and_repeated_failures_end_the_session(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None
) -> None:
    s.reviewers_pass(fake)
    bad = '{"summary": 3}'
    fake.script("session_plan", "not json at all", bad)  # iteration 1: the answer and its one repair
    fake.script("session_plan", bad, s.session_plan(summary="only a note", notes=[{"type": "tip", "content": "t"}]))
    fake.script("session_plan", *([bad] * 6))
    settings = settings.model_copy(update={"bounds": settings.bounds.model_copy(update={"max_parse_repairs": 1})})
    spec = s.write_spec(workspace, "# One\n- [ ] never done\n")
    inp = s.session_input(settings, workspace, spec)
    handle = await s.start_session(client, settings, inp, start_signal="message", start_signal_args=["please finish"])
    state = await handle.result()
    assert [x.outcome for x in state.summaries] == ["error", "planned", "error", "error", "error"]
    assert state.status == "failed" and "stayed invalid after 2 answer(s)" in state.error
    assert state.notes[-1].content == "t"
    prompts = [c["messages"][1]["content"] for c in fake.calls("session_plan")]
    # Not lost when the model never answered usefully; delivered once it did.
    assert ["please finish" in p for p in prompts] == [True, True, True, True, False, False, False, False, False, False]
    assert "stayed invalid" in prompts[2]  # the failure itself is told to the next iteration
