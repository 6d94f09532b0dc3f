"""Sessions that notice and stay small: a task blocked the same way three times is marked blocked
and the session moves on; a blocked iteration commits nothing; a long, chatty session keeps every
payload of its history (every run, through continue-as-new) under 256 KB."""

from __future__ import annotations

from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from models.config import Settings
from tests import replies as r
from tests import session_replies as s
from tests.fake_llm import FakeModel

PAYLOAD_LIMIT = 256 * 1024


def hooks_file(workspace: Path, text: str) -> None:
    (workspace / ".iter").mkdir(exist_ok=True)
    (workspace / ".iter" / "hooks.yml").write_text(text)


async def test_a_task_blocked_the_same_way_three_times_is_marked_stuck_and_the_session_moves_on(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None
) -> None:
    hooks_file(workspace, "version: 1\nhooks:\n  post_iteration:\n    - command: echo ran >> hook.log\n")
    fake.default("post_review", r.post_pass())
    fake.script("safety_review", *(r.safety_block(2, f"s{i}", "it deletes everything") for i in range(3)))
    fake.default("safety_review", r.safety_pass())
    fake.default("session_plan", s.append_plan("a.txt", "done\n", action="create", session_complete=True))
    spec = s.write_spec(workspace, "# Two\n- [ ] the dangerous one\n- [ ] the next one\n")
    state = await s.run_session(client, settings, s.session_input(settings, workspace, spec), timeout=60)
    assert [x.outcome for x in state.summaries] == ["blocked", "blocked", "blocked", "passed"]
    assert [t.status for t in state.tasks] == ["blocked", "completed"] and state.status == "completed"
    stuck = [n.content for n in state.notes if n.type == "stuck" and "marked blocked" in n.content]
    assert len(stuck) == 1 and stuck[0].startswith("task #1 was blocked 3 times the same way")
    commits = [m for m in s.git_log(workspace) if m.startswith("iter ")]
    assert commits == [f"iter {state.name}: task #2: the next one"]  # nothing under the blocked task's name
    assert sum("nothing committed: the iteration blocked" in e.message for e in state.events) == 3


async def test_a_long_chatty_session_keeps_every_payload_small(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None
) -> None:
    chatty = "python3 -c \"print('chatty hook output ' * 2000)\""  # about 40 KB a run, capped at 16 KB
    hooks_file(
        workspace,
        "version: 1\nhooks:\n"
        f"  pre_iteration:\n    - command: {chatty!r}\n      pipe_output: true\n"
        f"  post_iteration:\n    - command: {chatty!r}\n      pipe_output: true\n",
    )
    s.reviewers_pass(fake)
    fake.default(
        "session_plan",
        s.session_plan(
            r.write("s1", "log.txt", "line\n", "append"),
            r.verify("s2", "grep -q line log.txt"),
            summary="append a line and explain it: " + r.varied(3000),
            notes=[{"type": "learning", "content": "a long lesson: " + r.varied(3900)}],
            new_tasks=[{"content": "a follow-up task: " + r.varied(1900)}],
        ),
    )
    spec = s.write_spec(workspace, "# Long\n- [ ] never finished\n")
    inp = s.session_input(settings, workspace, spec, iterations=24, history_limit=200)
    state = await s.run_session(client, settings, inp, timeout=240)
    outcomes = [x.outcome for x in state.summaries]
    assert state.iteration == 24 and state.runs >= 3, (state.status, state.error, outcomes, state.events[-4:])
    largest, where, runs = 0, "", 0
    async for run in client.list_workflows(f"WorkflowId = '{state.workflow_id}'"):
        runs += 1
        async for event in client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history_events():
            size = event.ByteSize()  # an upper bound of every payload the event holds
            if size > largest:
                largest, where = size, f"run {run.run_id[:8]} event {event.event_id} {EventType.Name(event.event_type)}"
    print(f"{runs} runs, largest history event {largest:,} bytes ({where})")
    assert runs == state.runs
    assert largest < PAYLOAD_LIMIT, f"largest history event {largest:,} bytes at {where}"
    assert state.notes_dropped > 0 and len(state.hook_reports) <= 20
