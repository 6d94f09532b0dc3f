"""The model servers iter talks to: unreachable, busy, broken, missing, and both wire protocols."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from models.config import Settings
from tests import replies as r
from tests.conftest import make_settings
from tests.fake_llm import FakeModel, FakeModelServer
from tests.pipeline import run_request, start
from worker import build_worker

PLAN = r.plan(r.write("s1", "notes.txt", "hello\n"), r.verify("s2", "test -f notes.txt"))


def script_happy(fake: FakeModel) -> None:
    fake.default("plan", PLAN)
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("provider", ["ollama", "openai"])
async def test_unreachable_server_is_waited_for_and_reported(
    client: Client, temporal_env: WorkflowEnvironment, workspace: Path, tmp_path: Path, provider: str
) -> None:
    fake = FakeModel()
    script_happy(fake)
    server = FakeModelServer(fake, port=free_port(), provider=provider)
    settings = make_settings(server, temporal_env, tmp_path)
    async with build_worker(client, settings):
        handle = await start(client, settings, workspace)
        message = ""
        for _ in range(100):
            desc = await handle.describe()
            pending = desc.raw_description.pending_activities
            if pending and pending[0].attempt >= 3:
                message = pending[0].last_failure.message
                break
            await asyncio.sleep(0.1)
        assert "no model server answers at" in message and "ITER_LLM_BASE_URL" in message
        with server:  # the server comes back: the same request carries on
            state = (await handle.result()).state
    assert state.outcome == "passed"
    assert (workspace / "notes.txt").read_text() == "hello\n"


@pytest.mark.usefixtures("worker")
async def test_busy_and_broken_streams_are_retried(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.script("plan", r.Reply(status=503), r.Reply(status=429), r.Reply(PLAN, break_after=3), PLAN)
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed"
    assert len(fake.calls("plan")) == 4
    # Failed attempts never count as answers: the plan and its one file, written after it.
    assert [u.role for u in state.usage].count("coder") == 2


@pytest.mark.parametrize("model_server", ["ollama", "openai"], indirect=True)
async def test_missing_model_fails_at_once_naming_it(
    client: Client,
    temporal_env: WorkflowEnvironment,
    model_server: FakeModelServer,
    workspace: Path,
    tmp_path: Path,
    fake: FakeModel,
) -> None:
    script_happy(fake)
    settings = make_settings(model_server, temporal_env, tmp_path, model="qwen-missing:7b")
    async with build_worker(client, settings):
        handle = await start(client, settings, workspace)
        with pytest.raises(WorkflowFailureError) as err:
            await handle.result()
    message = str(err.value.cause)
    assert "qwen-missing:7b" in message and "does not exist" in message
    if model_server.provider == "ollama":
        assert "ollama pull qwen-missing:7b" in message
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    assert len(fake.calls("plan")) == 1  # not retried


async def test_fallback_model_answers_when_the_first_is_missing(
    client: Client,
    temporal_env: WorkflowEnvironment,
    model_server: FakeModelServer,
    workspace: Path,
    tmp_path: Path,
    fake: FakeModel,
) -> None:
    script_happy(fake)
    settings = make_settings(model_server, temporal_env, tmp_path, model="gone", fallback_models=["coder"])
    async with build_worker(client, settings):
        state = await run_request(client, settings, workspace)
    assert state.outcome == "passed"
    assert state.usage[0].model == "coder"
    assert [c["model"] for c in fake.calls("plan")] == ["gone", "coder"]


@pytest.mark.parametrize("model_server", ["ollama", "openai"], indirect=True)
@pytest.mark.usefixtures("worker")
async def test_wire_requests_carry_schema_context_and_key(
    client: Client,
    settings: Settings,
    workspace: Path,
    fake: FakeModel,
    model_server: FakeModelServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ITER_LLM_API_KEY", "sk-test-wire-1234567890abcdef")
    script_happy(fake)

    await run_request(client, settings, workspace)

    body = fake.calls("plan")[0]
    assert body["stream"] is True
    assert body["_auth"] == "Bearer sk-test-wire-1234567890abcdef"
    if model_server.provider == "ollama":
        assert body["_path"] == "/api/chat"
        assert body["options"]["num_ctx"] == settings.llm.num_ctx
        assert body["format"]["title"] == "plan"
    else:
        assert body["_path"] == "/v1/chat/completions"
        assert body["stream_options"] == {"include_usage": True}
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["name"] == "plan"
