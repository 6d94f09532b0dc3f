"""The rules a workflow keeps whatever the reviewer says: no PASS over a failed or skipped step,
skipped steps run (once) after the fixes, and step ids stay safe and unique across rounds."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client

from models.config import Settings
from models.schemas import parse_answer
from tests import replies as r
from tests import session_replies as s
from tests.fake_llm import FakeModel
from tests.pipeline import run_request

pytestmark = pytest.mark.usefixtures("worker")


# --- step ids: the model's answer is refused, so it is asked again --------------------------------


@pytest.mark.parametrize(
    ("step_id", "why"),
    [("../escape", "should match pattern"), ("a/b", "should match pattern"), ("x" * 41, "longer than 40")],
)
def test_unsafe_step_ids_are_parse_errors(step_id: str, why: str) -> None:
    parsed, errors = parse_answer("plan", _json(r.plan(r.verify(step_id))))
    assert parsed is None and why in errors


def test_duplicate_ids_in_a_plan_and_in_fix_steps_are_parse_errors() -> None:
    plan, errors = parse_answer("plan", _json(r.plan(r.verify("s1"), r.verify("s1"))))
    assert plan is None and "duplicate step id 's1'" in errors
    review, errors = parse_answer("post_review", _json(r.post_fail(r.run("a", "true"), r.run("a", "false"))))
    assert review is None and "duplicate step id 'a'" in errors


async def test_two_fix_steps_with_one_id_are_sent_back_and_both_run(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.script("plan", r.plan(r.verify("s1", "test -f a.txt && test -f b.txt")))
    fake.default("safety_review", r.safety_pass())
    twins = r.post_fail(r.write("fix", "a.txt", "a\n"), r.write("fix", "b.txt", "b\n"))
    fixed = r.post_fail(r.write("fix", "a.txt", "a\n"), r.write("fix2", "b.txt", "b\n"))
    fake.script("post_review", twins, fixed, r.post_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    assert [res.run_key for res in state.results] == ["r0-s1", "f1-fix", "f1-fix2", "r1-s1"]
    assert (workspace / "a.txt").read_text() == "a\n" and (workspace / "b.txt").read_text() == "b\n"
    repair = fake.calls("post_review")[1]["messages"][-1]["content"]
    assert "duplicate step id 'fix'" in repair  # the reviewer was told why


async def test_a_fix_id_that_clashes_with_a_plan_step_is_sent_back(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    # The plan already has a step "f1-add": the reviewer's "add" in round 1 would become it.
    fake.script("plan", r.plan(r.run("f1-add", "true"), r.verify("s2", "test -f a.txt")))
    fake.default("safety_review", r.safety_pass())
    fake.script(
        "post_review",
        r.post_fail(r.write("add", "a.txt", "a\n")),
        r.post_fail(r.write("add-a", "a.txt", "a\n")),
        r.post_pass(),
    )

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    assert [res.run_key for res in state.results] == ["r0-f1-add", "r0-s2", "f1-add-a", "r1-s2"]
    assert state.review_repairs == 1
    told = fake.calls("post_review")[1]["messages"][1]["content"]
    assert "clash with existing steps (f1-add)" in told


# --- never passed over a failed or skipped step ---------------------------------------------------


async def test_a_pass_over_a_failed_check_is_overruled_and_the_fix_round_repairs_it(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.script("plan", r.plan(r.verify("s1", "test -f done.txt")))
    fake.default("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass(), r.post_fail(r.write("make", "done.txt", "ok\n")), r.post_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    assert [(res.run_key, res.ok) for res in state.results] == [("r0-s1", False), ("f1-make", True), ("r1-s1", True)]
    assert "PASS overruled: step s1 failed (exit 1)" in [e.message for e in state.events]
    told = fake.calls("post_review")[1]["messages"][1]["content"]
    assert "Your PASS cannot stand: step s1 failed (exit 1)" in told


async def test_a_reviewer_that_keeps_passing_a_failed_step_never_passes_it(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    # Told once, the reviewer says PASS again: the coder gets the failure; its fixes fail too, so
    # the request ends failed, bounded, and what the failure skipped was never applied.
    settings.bounds.max_fix_depth = 2
    plan = r.plan(r.run("s1", "exit 3"), r.write("s2", "a.txt", "a\n"), r.verify("s3", "true"))
    fake.script("plan", plan, r.plan(r.run("retry", "exit 3"), r.verify("v", "true")))
    fake.default("plan", r.plan(r.run("again", "exit 4"), r.verify("v", "true")))
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "failed" and state.verify_verdict == "FAIL", state.error
    assert state.fix_rounds == 2 and "verification failed after 2 fix rounds" in state.error
    assert state.review_repairs == 1  # told once in the whole request: later rounds go to the coder at once
    messages = [e.message for e in state.events]
    assert any(m.startswith("PASS overruled: step s1 failed (exit 3); step s2 was skipped") for m in messages)
    assert any(m.startswith("PASS overruled again: ") for m in messages)
    assert [res.run_key for res in state.results if not res.ok and not res.skipped][:2] == ["r0-s1", "f1-retry"]
    assert not (workspace / "a.txt").exists()


async def test_a_failure_the_reviewer_keeps_passing_is_fixed_by_the_coder(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.script(
        "plan",
        r.plan(r.verify("s1", "test -f done.txt")),
        r.plan(r.write("make", "done.txt", "ok\n"), r.verify("v", "test -f done.txt")),
    )
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())  # a reviewer that says PASS whatever ran

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    assert [(res.run_key, res.ok) for res in state.results] == [("r0-s1", False), ("f1-make", True), ("r1-s1", True)]
    assert "Step s1 (verify) failed" in fake.calls("plan")[1]["messages"][-1]["content"]
    assert (workspace / "done.txt").read_text() == "ok\n"


async def test_steps_a_failure_skipped_run_once_after_the_fix(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    (workspace / "notes.md").write_text("# notes\n")
    fake.script(
        "plan",
        r.plan(
            r.run("s1", "cat missing.txt"),
            r.write("s2", "notes.md", "appended\n", "append"),
            r.verify("s3", "grep -q appended notes.md"),
        ),
    )
    fake.default("safety_review", r.safety_pass())
    fake.script("post_review", r.post_fail(r.write("make", "missing.txt", "here\n")), r.post_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    assert [(res.run_key, res.ok, res.skipped) for res in state.results] == [
        ("r0-s1", False, False),
        ("r0-s2", False, True),
        ("r0-s3", False, True),
        ("f1-make", True, False),
        ("r1-s2", True, False),
        ("r1-s3", True, False),
    ]
    assert (workspace / "notes.md").read_text() == "# notes\nappended\n"  # once


async def test_a_session_iteration_never_passes_over_a_failed_step(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    fake.script(
        "session_plan",
        s.session_plan(r.run("s1", "exit 4"), r.verify("s2", "true"), session_complete=True),
        s.session_plan(session_complete=True),
    )
    spec = s.write_spec(workspace, "# One\n- [ ] do it\n")
    state = await s.run_session(client, settings, s.session_input(settings, workspace, spec, iterations=2))

    assert state.summaries[0].outcome == "failed", state.summaries
    stuck = [n.content for n in state.notes if n.type == "stuck"]
    assert any("the reviewer said PASS, but step s1 failed (exit 4); step s2 was skipped" in n for n in stuck), stuck
    assert state.tasks[0].status != "completed"


def _json(value: object) -> str:
    import json

    return json.dumps(value)
