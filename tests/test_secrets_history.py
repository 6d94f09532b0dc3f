"""No secret in history: a request whose step prints secrets, reads a file holding one and dumps its
environment, run through `iter orchestrate` with an API key and a token in the environment, leaves
none of them anywhere in its Temporal history: not in inputs, results or failure messages, neither
in decoded payloads nor in the raw bytes. The API key still reaches the model server, as a header."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from tests import replies as r
from tests.cli import request_wid
from tests.fake_llm import FakeModel, Reply

API_KEY = "sk-test-" + uuid.uuid4().hex  # ITER_LLM_API_KEY: a known key format
TOKEN = "tok" + uuid.uuid4().hex[::-1]  # MY_SERVICE_TOKEN: no known format, a secret by its name
PRINTED_PREFIX = "sk-live"  # the step makes up a key-shaped value that is in no variable
# The project's own diagnostics script dumps the environment: the rules cannot see into it, so only
# the executor's environment (no variable of the worker's) keeps the secrets out of its output.
DIAG_SCRIPT = "import os\nprint(dict(os.environ))\n"
DUMP_STEP = "cat config/service.txt; python3 -c \"print('sk-' + 'live' * 6)\"; python3 tools/diag.py"


def payloads(msg: Message) -> Iterator[Payload]:
    """Every Payload anywhere inside a history event, maps and repeated fields included."""
    if isinstance(msg, Payload):
        yield msg
        return
    for field, value in msg.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif isinstance(value, Message):
            items = [value]
        else:
            items = list(value)  # a repeated field
        for item in items:
            if isinstance(item, Message):
                yield from payloads(item)


async def history_text(client: Client, workflow_id: str) -> tuple[bytes, str]:
    """The raw bytes of every event, and the text of every decoded payload."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    raw = b"".join(event.SerializeToString() for event in history.events)
    decoded = "\n".join(p.data.decode(errors="replace") for e in history.events for p in payloads(e))
    return raw, decoded


def assert_absent(secrets: list[str], raw: bytes, decoded: str) -> None:
    for secret in secrets:
        assert secret.encode() not in raw, f"{secret[:8]}... is in the raw history"
        assert secret not in decoded, f"{secret[:8]}... is in a decoded payload"


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch, cli_env: dict[str, str]) -> dict[str, str]:
    """The secrets in the worker's environment (this process) and in the user's shell (the CLI)."""
    for name, value in (("ITER_LLM_API_KEY", API_KEY), ("MY_SERVICE_TOKEN", TOKEN)):
        monkeypatch.setenv(name, value)
        cli_env[name] = value
    return cli_env


def iter_cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "cli.main", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("backend", ["local", pytest.param("docker", marks=pytest.mark.docker)])
async def test_history_of_a_request_whose_step_prints_secrets_holds_none(
    backend: str,
    request: pytest.FixtureRequest,
    client: Client,
    workspace: Path,
    fake: FakeModel,
    worker: None,
    secret_env: dict[str, str],
) -> None:
    if backend == "docker":
        request.getfixturevalue("docker_image")
    (workspace / "config").mkdir()
    (workspace / "config" / "service.txt").write_text(f"token: {TOKEN}\n")
    (workspace / "tools").mkdir()
    (workspace / "tools" / "diag.py").write_text(DIAG_SCRIPT)
    fake.script("plan", r.plan(r.run("s1", DUMP_STEP), r.verify("s2", "cat config/service.txt")))
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())
    env = {**secret_env, "ITER_EXECUTOR": backend}
    assert (await asyncio.to_thread(iter_cli, env, workspace, "project", "create", "--name", "calc")).returncode == 0
    assert (await asyncio.to_thread(iter_cli, env, workspace, "request", "add", "--description", "x")).returncode == 0

    result = await asyncio.to_thread(iter_cli, env, workspace, "orchestrate", "--request", "req_01", "--json")
    assert result.returncode == 0, result.stdout + result.stderr

    raw, decoded = await history_text(client, request_wid(workspace))
    assert "[REDACTED]" in decoded  # the step did print them: they were masked, not missing
    assert "'PATH'" in decoded  # the environment dump ran (and held none of the worker's secrets)
    assert_absent([API_KEY, TOKEN, PRINTED_PREFIX], raw, decoded)
    assert API_KEY not in result.stdout and TOKEN not in result.stdout
    # The key did its job: every model call carried it, as a header and nowhere else.
    assert fake.received and all(call["_auth"] == f"Bearer {API_KEY}" for call in fake.received)
    bodies = repr([{k: v for k, v in call.items() if k != "_auth"} for call in fake.received])
    assert API_KEY not in bodies and TOKEN not in bodies


async def test_failure_message_that_echoes_the_key_is_masked_in_history(
    client: Client, workspace: Path, fake: FakeModel, worker: None, secret_env: dict[str, str]
) -> None:
    """A model server that echoes the credentials in its error: the request fails, and says why,
    without the key."""
    fake.script("plan", Reply(status=400, error_body=f"bad request: Authorization Bearer {API_KEY} token {TOKEN}"))
    env = {**secret_env, "ITER_EXECUTOR": "local"}
    assert (await asyncio.to_thread(iter_cli, env, workspace, "project", "create", "--name", "calc")).returncode == 0
    assert (await asyncio.to_thread(iter_cli, env, workspace, "request", "add", "--description", "x")).returncode == 0

    result = await asyncio.to_thread(iter_cli, env, workspace, "orchestrate", "--request", "req_01", "--json")
    assert result.returncode == 1
    raw, decoded = await history_text(client, request_wid(workspace))
    assert b"bad request: Authorization Bearer [REDACTED]" in raw  # the reason survives, masked
    assert_absent([API_KEY, TOKEN], raw, decoded)
    assert API_KEY not in result.stdout + result.stderr  # nor in what the live view shows
