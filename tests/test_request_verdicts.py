"""Every verdict path of the request pipeline, end to end on the real Temporal dev server with
real subprocesses; only the model is a local server speaking the wire protocol."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client

from models.config import Settings
from tests import replies as r
from tests.fake_llm import FakeModel
from tests.pipeline import run_request

pytestmark = pytest.mark.usefixtures("worker")

GOOD_PLAN = r.plan(
    r.write("s1", "src/calc/ops.py", r.MULTIPLY, "append"),
    r.write("s2", "tests/test_mul.py", r.MULTIPLY_TEST),
    r.verify("s3"),
)


@pytest.mark.parametrize("model_server", ["ollama", "openai"], indirect=True)
async def test_pass_first_time_applies_the_plan(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.script("plan", GOOD_PLAN)
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    assert (workspace / "src/calc/ops.py").read_text().count("def multiply") == 1
    assert [res.ok for res in state.results] == [True, True, True]
    assert "2 passed" not in state.results[2].output and "3 passed" in state.results[2].output
    # The plan, then each of its two files written on its own, then the two reviews.
    assert [u.role for u in state.usage] == ["coder", "coder", "coder", "reviewer", "reviewer"]
    assert all(u.completion_tokens > 0 and u.tokens_per_s > 0 for u in state.usage)
    assert state.safety_verdict == "PASS" and state.verify_verdict == "PASS"
    assert list((Path(settings.data_dir) / "journals").glob("*")) == []  # journals go when the request ends


async def test_fail_then_fixed_injects_fix_under_failing_step_once(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.script("plan", r.plan(r.write("s1", "tests/test_mul.py", r.MULTIPLY_TEST), r.verify("s2")))
    fake.script("safety_review", r.safety_pass(), r.safety_pass())
    fix = r.write("add", "src/calc/ops.py", r.MULTIPLY, "append")
    fake.script("post_review", r.post_fail(fix), r.post_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    assert state.fix_rounds == 1
    verify_node = state.tree[1]
    assert [c.step.id for c in verify_node.children] == ["f1-add"]
    assert verify_node.children[0].depth == 1
    assert (workspace / "src/calc/ops.py").read_text().count("def multiply") == 1
    keys = [res.run_key for res in state.results]
    assert keys == ["r0-s1", "r0-s2", "f1-add", "r1-s2"]
    assert [res.ok for res in state.results] == [True, False, True, True]


async def test_fix_rounds_stop_at_the_depth_bound(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    settings.bounds.max_fix_depth = 2
    fake.script("plan", r.plan(r.verify("s1", "exit 1")))
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_fail(r.run("noop", "true")))

    state = await run_request(client, settings, workspace)

    assert state.outcome == "failed"
    assert state.fix_rounds == 2
    assert state.tree[0].children[0].children[0].depth == 2  # each round one level deeper
    assert "2 fix rounds" in state.error


async def test_info_needed_gathers_read_only_evidence(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    (workspace / ".env").write_text("API_TOKEN=TOPSECRET\n")
    fake.script("plan", GOOD_PLAN)
    fake.script("safety_review", r.safety_pass())
    fake.script(
        "post_review",
        r.post_info(
            ("read_file", "src/calc/ops.py"),
            ("run", "git status --short"),
            ("run", "rm -rf src"),
            ("read_file", ".env"),
        ),
        r.post_pass(),
    )

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    assert state.info_rounds == 1
    second_review = fake.calls("post_review")[1]["messages"][1]["content"]
    assert "def multiply" in second_review  # the file's content reached the reviewer
    assert "?? tests/test_mul.py" in second_review  # the command really ran
    assert "refused: point 2" in second_review  # a destructive "evidence" command never runs
    assert (workspace / "src/calc/ops.py").exists()
    assert "refused: point 3" in second_review and "TOPSECRET" not in second_review  # .env stays unread


async def test_blocked_plan_is_replanned_with_reasons(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    escape = r.plan(r.write("s1", "../outside.py", "x = 1\n"), r.verify("s2"))
    fake.script("plan", escape, GOOD_PLAN)
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    assert state.block_replans == 1
    assert not (workspace.parent / "outside.py").exists()
    replan_prompt = fake.calls("plan")[1]["messages"][-1]["content"]
    assert "point 1" in replan_prompt and "../outside.py" in replan_prompt


async def test_reviewer_block_to_the_end_runs_nothing(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    settings.bounds.max_block_replans = 2
    fake.default("plan", r.plan(r.run("s1", "echo ran >> ran.txt"), r.verify("s2")))
    fake.default("safety_review", r.safety_block(5, "s1", "it phones home"))

    state = await run_request(client, settings, workspace)

    assert state.outcome == "blocked"
    # The same blocked plan came back from the re-plan: asked again differently, never the same call.
    assert state.block_replans == 1 and state.repeated_answers == settings.bounds.max_parse_repairs + 1
    calls = [(c["messages"], c["options"]["temperature"]) for c in fake.calls("plan")]
    assert len(calls) == 1 + state.repeated_answers
    assert all(a != b for i, a in enumerate(calls) for b in calls[i + 1 :]), "a call was repeated unchanged"
    assert not (workspace / "ran.txt").exists()
    assert state.results == []
    assert any(f.source == "reviewer" and "phones home" in f.reason for f in state.findings)


async def test_rules_block_what_the_reviewer_would_pass(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    settings.bounds.max_block_replans = 0
    fake.default("plan", r.plan(r.write("s1", ".git/config", "[core]\n"), r.verify("s2")))
    fake.default("safety_review", r.safety_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "blocked"
    assert fake.calls("safety_review") == []  # the reviewer's opinion was never needed
    assert state.findings[0].point == 1 and state.findings[0].source == "rules"


async def test_malformed_answer_is_sent_back_with_errors(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.script(
        "plan",
        "{not json",
        {"summary": "x", "steps": [{"id": "s1", "type": "file", "path": "a.py", "action": "create"}]},
        GOOD_PLAN,
    )
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    assert state.parse_repairs == 2
    repair = fake.calls("plan")[2]["messages"][-1]["content"]
    assert "needs content" in repair


async def test_truncated_answer_is_never_executed(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    settings.bounds.max_parse_repairs = 1
    fake.default("plan", r.Reply(r.plan(r.run("s1", "echo ran >> ran.txt"), r.verify("s2")), truncate=True))

    state = await run_request(client, settings, workspace)

    assert state.outcome == "failed"
    assert "cut off" in state.error
    assert not (workspace / "ran.txt").exists()
    assert [u.done_reason for u in state.usage] == ["length", "length"]


async def test_invalid_to_the_end_fails_without_running(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.default("plan", "[]")

    state = await run_request(client, settings, workspace)

    assert state.outcome == "failed"
    # The first "[]" is repaired with its errors; each identical one after it is asked for differently.
    assert state.parse_repairs == 1 and state.repeated_answers == settings.bounds.max_parse_repairs
    temperatures = [c["options"]["temperature"] for c in fake.calls("plan")]
    assert temperatures[2:] == sorted(set(temperatures[2:])), "each call after a repeat samples hotter"
    assert state.results == []


async def test_a_fail_without_fix_steps_asks_the_coder_for_the_fix(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    # A small reviewer says FAIL and writes no code (or only re-runs the check): the coder, who
    # has the files, gets its plan and the failure back and writes the fix.
    broken = "def multiply(a, b):\n    return a + b\n"
    fake.script(
        "plan",
        r.plan(
            r.write("s1", "src/calc/ops.py", broken, "append"),
            r.write("s2", "tests/test_mul.py", r.MULTIPLY_TEST),
            r.verify("s3"),
        ),
        r.plan(
            r.write("fix", "src/calc/ops.py", (workspace / "src/calc/ops.py").read_text() + r.MULTIPLY, "modify"),
            r.verify("check"),
        ),
    )
    fake.default("safety_review", r.safety_pass())
    fake.script("post_review", r.post_fail(r.verify("again")), r.post_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    fix_call = fake.calls("plan")[1]["messages"]
    assert "That plan ran, and it does not work yet" in fix_call[-1]["content"]
    assert "Step s3 (verify) failed" in fix_call[-1]["content"] and "assert" in fix_call[-1]["content"]
    assert [m["role"] for m in fix_call[-2:]] == ["assistant", "user"]  # its own plan, then the failure
    assert [res.run_key for res in state.results] == ["r0-s1", "r0-s2", "r0-s3", "f1-fix", "r1-s3"]
    assert state.fix_rounds == 1 and state.results[-1].ok
    assert (workspace / "src/calc/ops.py").read_text().count("def multiply") == 1
