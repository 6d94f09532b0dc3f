"""The real-inference tier: iter's own code against a real ``llama-server`` (Gemma 3 270M, a tiny
base model) through the OpenAI-compatible provider.

The model's plan quality is irrelevant here; these tests assert protocol properties: the
schema-constrained stream parses against our contract, usage is recorded, and a whole request
reaches a terminal state with a recorded verdict. Run only this tier with
``.venv/bin/pytest -m llama``; skip it with ``-m "not llama"``."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from activities.llm_client import stream_chat
from activities.local_model import LocalServer
from activities.prompt import build
from models.config import Settings
from models.plan import Plan
from models.request import PromptInput
from models.schemas import json_schema, parse_answer
from tests import llama
from tests import replies as r
from tests.conftest import example_project, make_settings
from tests.pipeline import start
from workflows.request import RequestWorkflow

pytestmark = [pytest.mark.llama, pytest.mark.timeout(240)]

# The tiny base model, given iter's real prompt, mostly copies an example answer (with the server's
# --repeat-penalty, see tests/llama.py), which keeps each call near 100 tokens and the tier fast;
# left to itself it lists steps until the length limit.
EXAMPLE_PLAN = r.plan(
    r.write("s1", "src/calc/mul.py", "def multiply(a: float, b: float) -> float:\n    return a * b\n"),
    r.verify("s2", "python -c 'print(1)'"),
    summary="add multiply",
)
DESCRIPTION = "Add a multiply function. Answer with exactly this JSON:\n" + json.dumps(EXAMPLE_PLAN)
TERMINAL = {"passed", "failed", "blocked"}


@pytest.fixture
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A fresh server per test (about 1.5 s): a warm prompt cache makes greedy answers differ from
    a cold one's, so sharing one server made the second test depend on the first."""
    reason = llama.missing()
    if reason:
        pytest.skip(reason)
    with llama.server(tmp_path_factory.mktemp("llama") / "llama-server.log").start(llama.START_TIMEOUT_S) as server:
        yield server


@pytest.fixture
def settings(llama_server: LocalServer, temporal_env: WorkflowEnvironment, tmp_path: Path) -> Settings:
    """Overrides conftest's: the worker fixture then talks to llama-server instead of the fake."""
    base = make_settings(
        llama_server,  # type: ignore[arg-type]  # it has the provider and base_url make_settings reads
        temporal_env,
        tmp_path,
        model=llama.ALIAS,
        reviewer_model=llama.ALIAS,
        max_tokens=1024,  # room for a whole plan; bounds every call to ~15 s at ~70 tokens/s
        temperature=0.0,
        num_ctx=8192,
    )
    # The tiny model's answers may take any verdict path; with one repair per answer and no
    # re-plan, fix or evidence rounds, every path ends within six model calls (about a minute).
    bounds = base.bounds.model_copy(
        update={"max_parse_repairs": 1, "max_block_replans": 0, "max_info_rounds": 0, "max_fix_depth": 0}
    )
    return base.model_copy(update={"bounds": bounds})


async def test_stream_from_llama_server_parses_as_plan_with_usage(
    llama_server: LocalServer, settings: Settings, workspace: Path
) -> None:
    prompt = build(
        PromptInput(
            project=example_project(description=DESCRIPTION),
            request_id="req_01",
            workspace=str(workspace),
            max_file_bytes=settings.bounds.max_file_bytes,
        )
    )
    messages = [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}]
    pieces: list[str] = []

    result = await stream_chat(settings.llm, llama.ALIAS, messages, "plan", json_schema("plan"), pieces.append)

    plan, errors = parse_answer("plan", result.text)
    assert isinstance(plan, Plan), f"{errors}\n{result.text}"
    assert result.done_reason == "stop"
    assert result.chunks > 1 and len(pieces) == result.chunks, "the answer must arrive streamed, in pieces"
    assert "".join(pieces) == result.text
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.duration_s > 0
    assert result.host == f"127.0.0.1:{llama_server.port}"


async def test_request_on_llama_server_ends_with_verdict_and_usage(
    llama_server: LocalServer, client: Client, settings: Settings, workspace: Path, worker: None
) -> None:
    project = example_project(description=DESCRIPTION)
    handle = await start(client, settings, workspace, project)
    # An unreadable post-review verdict fails the workflow itself; its state is still the record.
    with contextlib.suppress(WorkflowFailureError):
        await handle.result()
    state = await handle.query(RequestWorkflow.status)

    assert state.outcome in TERMINAL, state.events[-5:]
    assert state.phase == "done"
    assert state.safety_verdict in ("PASS", "BLOCK"), f"no safety verdict recorded: {state.events[-5:]}"
    if state.outcome == "passed":
        assert state.verify_verdict == "PASS"
    roles = {u.role for u in state.usage}
    # The reviewer model reads only what the deterministic rules let through: a plan they block
    # (the tiny model often copies the prompt's answer shape, placeholder and all) never reaches it.
    ruled_out = state.safety_verdict == "BLOCK" and all(f.source == "rules" for f in state.findings)
    assert roles == ({"coder"} if ruled_out else {"coder", "reviewer"}), (roles, state.findings)
    for usage in state.usage:
        assert usage.model == llama.ALIAS
        assert usage.host == f"127.0.0.1:{llama_server.port}"
        assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
        assert usage.duration_s > 0 and usage.tokens_per_s > 0
