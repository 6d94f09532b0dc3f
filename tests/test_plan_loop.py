"""The plan loop with a small model's habits: a plan without a verify step, a stream stuck on a
short pattern, a prompt larger than the server's real context window. End to end on the real
Temporal dev server; the model is the wire-protocol fake."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError

from models.config import Settings
from models.context_fit import DoesNotFit, fit
from models.repetition import RepetitionGuard, repeating_pattern
from tests import replies as r
from tests.conftest import example_project
from tests.fake_llm import FakeModel
from tests.pipeline import run_request, start
from workflows.request import RequestWorkflow

MUL = "def multiply(a: float, b: float) -> float:\n    return a * b\n"


@pytest.mark.usefixtures("worker")
async def test_plan_without_verify_step_gets_the_test_command(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.script("plan", r.plan(r.write("s1", "src/calc/mul.py", MUL)))
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    assert state.added_verify == "python -m pytest -q"
    assert len(fake.calls("plan")) == 1, "completed, not sent back"
    verify = state.tree[-1].step
    assert verify.type == "verify" and verify.command == "python -m pytest -q"
    assert any("added the project's test command" in e.message for e in state.events)
    assert "passed" in state.results[-1].output


@pytest.mark.usefixtures("worker")
async def test_degenerate_stream_is_cut_off_and_repaired(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.script("plan", '{"summary": "' + "s1: " * 3000, r.plan(r.write("s1", "src/calc/mul.py", MUL), r.verify("s2")))
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    first = state.usage[0]
    assert first.done_reason == "repetition"
    assert first.completion_tokens < 200, "cut off early, not at the length limit"
    repair = fake.calls("plan")[1]["messages"][-1]["content"]
    assert "stuck repeating" in repair


@pytest.mark.parametrize("model_server", ["openai"], indirect=True)
@pytest.mark.usefixtures("worker")
async def test_prompt_larger_than_the_server_context_fails_at_once(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.context_length = 600  # what llama.cpp's /props reports; the configured num_ctx is larger
    fake.default("plan", r.plan(r.write("s1", "src/calc/mul.py", MUL), r.verify("s2")))

    handle = await start(client, settings, workspace, example_project())
    with pytest.raises(WorkflowFailureError):  # a model call that cannot succeed fails the request
        await handle.result()
    state = await handle.query(RequestWorkflow.status)

    assert state.outcome == "failed"
    assert "context window is 600" in state.error, state.error
    assert fake.calls("plan") == [], "nothing was sent that could not fit"


def test_fitting_drops_old_repair_turns_then_refuses() -> None:
    system, user = {"role": "system", "content": "s" * 300}, {"role": "user", "content": "u" * 3000}
    turns = [{"role": "assistant", "content": "a" * 3000}, {"role": "user", "content": "e" * 300}] * 3
    fitted = fit([system, user, *turns], window=3000, max_tokens=4096, min_answer=500)
    assert fitted.dropped_turns >= 1 and fitted.messages[:2] == [system, user]
    assert fitted.messages[-1] == turns[-1]
    assert fitted.prompt_tokens + fitted.max_tokens <= 3000
    with pytest.raises(DoesNotFit, match="context window is 1,000"):
        fit([system, user], window=1000, max_tokens=4096, min_answer=500)


def test_repetition_is_seen_in_stuck_streams_only() -> None:
    assert repeating_pattern("x" + "s1: " * 120) in ("s1: ", " s1:", ": s1", "1: s")
    assert repeating_pattern('{"a": 1}' + "\n" * 500) == "\n"
    code = Path(__file__).read_text()
    assert repeating_pattern(code) == ""
    guard = RepetitionGuard()
    assert not any(guard.feed(code[i : i + 7]) for i in range(0, len(code), 7))


@pytest.mark.usefixtures("worker")
async def test_reviewer_repeating_an_invalid_verdict_is_asked_differently(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.script("plan", r.plan(r.write("s1", "src/calc/mul.py", MUL), r.verify("s2")))
    fake.script("safety_review", r.safety_pass())
    fake.default("post_review", "[]")

    handle = await start(client, settings, workspace, example_project())
    with pytest.raises(WorkflowFailureError):  # an unreadable verdict fails the request
        await handle.result()

    calls = [(c["messages"], c["options"]["temperature"]) for c in fake.calls("post_review")]
    assert len(calls) == settings.bounds.max_parse_repairs + 1
    assert all(a != b for i, a in enumerate(calls) for b in calls[i + 1 :]), "a call was repeated unchanged"
    assert calls[-1][0][-1]["content"].startswith("Your previous answer was rejected")
