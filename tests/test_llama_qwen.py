"""The real loop, with a real coder model: Qwen2.5-Coder-0.5B-Instruct on llama-server, through
the OpenAI-compatible provider, takes one small request to PASS: a change to a 6-line module whose
test passes afterwards (the test runs again here, outside iter, to prove it).

Time bounds follow the server's measured speed: a short generation first measures tokens/s, and
the request gets the time its token budget needs at that speed. A failure says the speed it saw."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities import local_model as lm
from models.config import Settings, data_dir, load_settings
from models.project import FeatureRequest, Project
from models.request import RequestInput
from tests.conftest import git, make_settings
from workflows.request import RequestWorkflow

# In the default run since 2026-12-07 (passed 3 of 3 here: 83 s under load, 69 s, 46 s idle);
# it skips, naming the pip command, where the model's packages are not installed.
pytestmark = [pytest.mark.llama, pytest.mark.timeout(1500)]

MODULE = 'def greet(name: str) -> str:\n    """A greeting for name."""\n    return "Hello"\n'
TEST = (
    "from greet import greet\n\n\n"
    "def test_greet_names_the_person() -> None:\n"
    '    assert greet("Ada") == "Hello, Ada!"\n'
)
REQUEST = 'Change greet so that greet("Ada") returns "Hello, Ada!" (the name, then an exclamation mark).'
# Tokens the whole request may need at most: a plan, the file written after it, a safety review and
# a post review, plus one repair. Time allowed = prompt reading + this at the measured rate.
TOKEN_BUDGET = 2 * 1024 + 1024 + 1024 + 1024
PROMPT_TOKENS_BUDGET = 5 * 2500  # five prompts of about 2,500 tokens each


class Speed:
    def __init__(self, gen_tps: float, prompt_tps: float) -> None:
        self.gen_tps, self.prompt_tps = gen_tps, prompt_tps

    def __str__(self) -> str:
        return f"{self.gen_tps:.1f} tokens/s generating, {self.prompt_tps:.0f} tokens/s reading the prompt"

    def budget_s(self) -> float:
        return 60 + 2.0 * (TOKEN_BUDGET / self.gen_tps + PROMPT_TOKENS_BUDGET / self.prompt_tps)


@pytest.fixture(scope="module")
def qwen() -> Iterator[lm.LocalServer]:
    try:
        lm.server_binary()
        path = lm.ensure_model(lm.DEFAULT_MODEL, data_dir(load_settings()))
    except lm.LocalModelError as exc:
        pytest.skip(str(exc))
    log = Path(f"/tmp/iter-llama-qwen-{uuid.uuid4().hex[:6]}.log")
    with lm.LocalServer(model_path=path, alias=lm.QWEN_05B.alias, log_path=log) as server:
        yield server


def measure(server: lm.LocalServer) -> Speed:
    """llama-server's own timings of one short completion."""
    reply = httpx.post(
        server.base_url + "/chat/completions",
        json={
            "model": server.alias,
            "messages": [{"role": "user", "content": "Count from 1 to 40, separated by spaces."}],
            "max_tokens": 48,
            "temperature": 0,
        },
        timeout=300,
    )
    reply.raise_for_status()
    timings = reply.json().get("timings") or {}
    return Speed(float(timings.get("predicted_per_second") or 1.0), float(timings.get("prompt_per_second") or 50.0))


@pytest.fixture
def greet_workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "greet"
    ws.mkdir()
    (ws / "greet.py").write_text(MODULE)
    (ws / "test_greet.py").write_text(TEST)
    git(ws, "init", "-q", "-b", "main")
    git(ws, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    git(ws, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "greet")
    return ws


@pytest.fixture
def settings(qwen: lm.LocalServer, temporal_env: WorkflowEnvironment, tmp_path: Path) -> Settings:
    """Overrides conftest's: the worker fixture then talks to llama-server."""
    return make_settings(
        qwen,  # type: ignore[arg-type]  # it has the provider and base_url make_settings reads
        temporal_env,
        tmp_path,
        model=lm.QWEN_05B.alias,
        reviewer_model=lm.QWEN_05B.alias,
        temperature=0.0,
        num_ctx=lm.DEFAULT_CTX,
    )


async def test_qwen_takes_a_small_request_to_pass(
    qwen: lm.LocalServer, client: Client, settings: Settings, greet_workspace: Path, worker: None
) -> None:
    speed = await asyncio.to_thread(measure, qwen)
    budget = speed.budget_s()
    project = Project(
        name="greet",
        selected_files=["greet.py", "test_greet.py"],
        requests=[FeatureRequest(id="req_01", description=REQUEST, affected_files=["greet.py"])],
    )
    handle = await client.start_workflow(
        RequestWorkflow.run,
        RequestInput(project=project, request_id="req_01", workspace=str(greet_workspace), settings=settings),
        id=f"iter-greet-req_01-{uuid.uuid4().hex[:8]}",
        task_queue=settings.temporal.task_queue,
    )
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(handle.result(), timeout=budget)
    except TimeoutError:
        state = await handle.query(RequestWorkflow.status)
        await handle.cancel()
        pytest.fail(
            f"no verdict in {budget:.0f} s, the time {TOKEN_BUDGET} tokens need at the measured {speed}; "
            f"it was in phase {state.phase} after {len(state.usage)} model calls: {state.events[-3:]}"
        )
    state = result.state
    took = time.monotonic() - started
    calls = ", ".join(f"{u.role} {u.completion_tokens} tok at {u.tokens_per_s} tok/s" for u in state.usage)
    assert state.outcome == "passed", f"{state.outcome}: {state.error} ({calls}; measured {speed}; {took:.0f} s)"
    # The proof outside iter: the original test passes against the changed module.
    (greet_workspace / "test_greet.py").write_text(TEST)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_greet.py"],
        cwd=greet_workspace,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-1500:]
