"""Held steps: the gate's third verdict, settled by a person (``iter approve`` / ``iter deny``) or by
the project's hold mode, on the real Temporal dev server; the CLI runs as a subprocess."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from activities.files import FileStepError, apply_file_step
from models.config import Settings
from models.holds import HoldDecision
from models.plan import FileStep
from models.request import RequestResult, RequestState
from policy.digests import reviewed_digests
from tests import replies as r
from tests import session_replies as s
from tests.cli import iter_cmd
from tests.conftest import git
from tests.fake_llm import FakeModel
from tests.pipeline import start, wait_for
from workflows.request import RequestWorkflow

# `rm -rf build` on a narrow target: risky but plausibly legitimate, so held, not blocked
HELD_PLAN = r.plan(
    r.run("s1", "rm -rf build"), r.write("s2", "notes.txt", "clean\n"), r.verify("s3", "test ! -d build")
)
SAFE_PLAN = r.plan(r.write("s1", "notes.txt", "kept\n"), r.verify("s2", "test -d build"))


def _tracked_build(workspace: Path) -> None:
    """A build/ folder in git: the request's worktree has it too, and its deletion lands."""
    (workspace / "build").mkdir()
    (workspace / "build" / "out.o").write_text("x")
    git(workspace, "add", "-A")
    git(workspace, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "build")


def _waiting(state: RequestState) -> bool:
    return bool(state.holds.waiting)


async def _held(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> tuple[WorkflowHandle[Any, RequestResult], RequestState]:
    _tracked_build(workspace)
    fake.script("plan", HELD_PLAN, SAFE_PLAN)
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    handle = await start(client, settings, workspace)
    state = await wait_for(handle, _waiting)
    return handle, state


@pytest.mark.usefixtures("worker")
async def test_a_held_step_waits_and_runs_once_a_person_approves(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, cli_env: dict[str, str]
) -> None:
    handle, state = await _held(client, settings, workspace, fake)
    assert state.safety_verdict == "HOLD"
    assert [h.step_id for h in state.holds.waiting] == ["s1"]
    assert "rm -rf build" in state.holds.waiting[0].reasons[0]
    assert (workspace / "build").is_dir(), "nothing ran while the step was held"

    shown = await asyncio.to_thread(iter_cmd, workspace, cli_env, "status", handle.id)
    assert shown.returncode == 0, shown.stderr
    assert "held step s1 waits for a person" in shown.stdout and "iter approve" in shown.stdout
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "held for a person: step(s) s1" in meta.current_details, "the Temporal UI shows why it waits"

    done = await asyncio.to_thread(iter_cmd, workspace, cli_env, "approve", handle.id, "s1")
    assert done.returncode == 0, done.stderr
    assert "approved: s1" in done.stdout
    result = await handle.result()

    assert result.state.outcome == "passed", result.state.error
    assert not (workspace / "build" / "out.o").exists(), result.state.landing
    assert result.state.safety_verdict == "APPROVED"
    assert [h.decision for h in result.state.holds.held] == ["approved"]
    assert len(fake.calls("plan")) == 1, "an approved step is not planned again"
    history = await asyncio.to_thread(iter_cmd, workspace, cli_env, "history", handle.id, "--json")
    text = json.dumps(json.loads(history.stdout))
    assert "HOLD" in text and "update approve" in text


@pytest.mark.usefixtures("worker")
async def test_a_denied_step_goes_back_to_the_coder_with_the_reason(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, cli_env: dict[str, str]
) -> None:
    handle, _ = await _held(client, settings, workspace, fake)

    done = await asyncio.to_thread(iter_cmd, workspace, cli_env, "deny", handle.id, "--reason", "keep the build cache")
    assert done.returncode == 0, done.stderr
    result = await handle.result()

    assert result.state.outcome == "passed", result.state.error
    assert (workspace / "build").is_dir(), "the denied step never ran"
    assert (workspace / "notes.txt").read_text() == "kept\n"
    replan = fake.calls("plan")[1]["messages"][-1]["content"]
    assert "denied by a person: keep the build cache" in replan


@pytest.mark.usefixtures("worker")
async def test_a_decision_nothing_waits_for_is_refused_and_leaves_no_trace(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, cli_env: dict[str, str]
) -> None:
    handle, _ = await _held(client, settings, workspace, fake)
    wrong = await asyncio.to_thread(iter_cmd, workspace, cli_env, "approve", handle.id, "s2")
    assert wrong.returncode == 1
    assert "step 's2' is not waiting for a decision; waiting: s1" in wrong.stderr
    no_reason = await asyncio.to_thread(iter_cmd, workspace, cli_env, "deny", handle.id, "--reason", " ")
    assert no_reason.returncode != 0 and "reason" in no_reason.stderr

    await handle.execute_update(RequestWorkflow.approve, HoldDecision())
    await handle.result()
    with pytest.raises(RPCError, match="already completed"):
        await handle.execute_update(RequestWorkflow.approve, HoldDecision())
    events = [e async for e in handle.fetch_history_events()]
    updates = [e for e in events if e.HasField("workflow_execution_update_accepted_event_attributes")]
    assert len(updates) == 1, "the refused decision left nothing in history"


# `.iter/` ignored: git leaves the policy out of the request's worktree; it still applies.
@pytest.mark.parametrize("git_ignores_iter", [False, True], ids=["tracked", "ignored"])
@pytest.mark.usefixtures("worker")
async def test_hold_mode_block_in_the_project_blocks_with_the_reason(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, git_ignores_iter: bool
) -> None:
    if git_ignores_iter:
        with (workspace / ".gitignore").open("a") as ignore:
            ignore.write("\n.iter/\n")
    (workspace / ".iter").mkdir(exist_ok=True)
    (workspace / ".iter" / "policy.yaml").write_text("hold: block\n")
    _tracked_build(workspace)
    settings.bounds.max_block_replans = 0
    fake.script("plan", HELD_PLAN)
    fake.default("safety_review", r.safety_pass())

    handle = await start(client, settings, workspace)
    result = await asyncio.wait_for(handle.result(), 60)

    assert result.state.outcome == "blocked", result.state.events[-3:]
    assert (workspace / "build").is_dir()
    assert any("hold mode is 'block'" in f.reason for f in result.state.findings)
    assert result.state.holds.held == []


@pytest.mark.usefixtures("worker")
async def test_hold_mode_allow_in_the_project_lets_held_steps_run(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    (workspace / ".iter").mkdir(exist_ok=True)
    (workspace / ".iter" / "policy.yaml").write_text("hold: allow\n")
    _tracked_build(workspace)
    fake.script("plan", HELD_PLAN)
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())

    result = await (await start(client, settings, workspace)).result()

    assert result.state.outcome == "passed", result.state.error
    assert not (workspace / "build" / "out.o").exists()
    assert any("allowed by the project's hold mode 'allow'" in e.message for e in result.state.events)


@pytest.mark.usefixtures("worker")
async def test_a_headless_session_blocks_a_held_step_and_goes_on(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    (workspace / "build").mkdir()
    s.reviewers_pass(fake)
    fake.script(
        "session_plan",
        s.session_plan(r.run("s1", "rm -rf build"), r.verify("s2", "true")),
        s.append_plan("a.txt", "done\n", action="create", session_complete=True),
    )
    spec = s.write_spec(workspace, "# One\n- [ ] clean up\n")
    inp = s.session_input(settings, workspace, spec, hold_mode="block")  # what `iter build --headless` sends
    state = await s.run_session(client, settings, inp, timeout=90)  # two iterations, on a loaded machine

    assert [x.outcome for x in state.summaries] == ["blocked", "passed"], "it never waits for nobody"
    assert (workspace / "build").is_dir()
    assert "hold mode is 'block'" in state.notes[0].content


@pytest.mark.usefixtures("worker")
async def test_a_session_waits_for_a_person_and_runs_the_approved_step(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, cli_env: dict[str, str]
) -> None:
    _tracked_build(workspace)
    s.reviewers_pass(fake)
    fake.script(
        "session_plan",
        s.session_plan(r.run("s1", "rm -rf build"), r.verify("s2", "test ! -d build"), session_complete=True),
    )
    spec = s.write_spec(workspace, "# One\n- [ ] clean up\n")
    inp = s.session_input(settings, workspace, spec)
    handle = await s.start_session(client, settings, inp)
    await s.wait_state(handle, lambda st: bool(st.holds.waiting))

    shown = await asyncio.to_thread(iter_cmd, workspace, cli_env, "status", handle.id)
    assert "held step s1 waits for a person" in shown.stdout, shown.stdout + shown.stderr
    done = await asyncio.to_thread(iter_cmd, workspace, cli_env, "approve", handle.id)
    assert done.returncode == 0, done.stderr
    state = await asyncio.wait_for(handle.result(), 60)

    assert state.summaries[0].outcome == "passed", state.events[-5:]
    assert not (workspace / "build" / "out.o").exists()


@pytest.mark.usefixtures("worker")
async def test_a_file_edited_while_the_plan_waited_is_not_written_over(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    (workspace / "notes.txt").write_text("as reviewed\n")
    _tracked_build(workspace)  # commits notes.txt too
    fake.script(
        "plan",
        r.plan(r.run("s1", "rm -rf build"), r.write("s2", "notes.txt", "planned\n", "modify"), r.verify("s3", "true")),
    )
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    handle = await start(client, settings, workspace)
    await wait_for(handle, _waiting)
    (workspace / "notes.txt").write_text("my own edit, keep me\n")  # the user edits it while the step waits

    await handle.execute_update(RequestWorkflow.approve, HoldDecision(step="s1"))
    result = await asyncio.wait_for(handle.result(), 60)

    assert (workspace / "notes.txt").read_text() == "my own edit, keep me\n", result.state.landing
    review_prompt = fake.calls("safety_review")[0]["messages"][-1]["content"]
    assert "--- notes.txt (sha256 " in review_prompt, "the reviewer sees which content the step is bound to"


def test_a_file_step_refuses_a_file_that_changed_since_the_review(tmp_path: Path) -> None:
    """Where the steps run in place (no worktree), the review's digest is what protects the edit."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "notes.txt").write_text("as reviewed\n")
    step = FileStep(id="s2", type="file", path="notes.txt", action="modify", content="planned\n")
    reviewed = reviewed_digests([step], ws)["s2"]
    (ws / "notes.txt").write_text("my own edit, keep me\n")
    with pytest.raises(FileStepError, match="was edited after the plan was reviewed"):
        apply_file_step(step, ws, tmp_path / "run", reviewed)
    assert (ws / "notes.txt").read_text() == "my own edit, keep me\n"
    assert apply_file_step(step, ws, tmp_path / "run2", None) == "modified"  # no review digest: as before
