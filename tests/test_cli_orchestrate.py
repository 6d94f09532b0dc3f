"""`iter orchestrate` and friends, run as a user runs them, against a real Temporal and worker."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests import replies as r
from tests.cli import iter_cmd, iter_popen, setup_project, until_running, workflow_status
from tests.fake_llm import FakeModel, FakeModelServer

pytestmark = pytest.mark.usefixtures("thread_worker")

PLAN = r.plan(
    r.write("s1", "src/calc/ops.py", r.MULTIPLY, "append"),
    r.write("s2", "tests/test_mul.py", r.MULTIPLY_TEST),
    r.verify("s3"),
)


def script(fake: FakeModel, plan: dict[str, object] = PLAN) -> None:
    """The coder answers ``plan``; both reviews pass."""
    fake.default("plan", plan)
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())


def test_orchestrate_streams_and_summarises(workspace: Path, cli_env: dict[str, str], fake: FakeModel) -> None:
    script(fake)
    wid = setup_project(workspace, cli_env)

    done = iter_cmd(workspace, cli_env, "orchestrate", "--request", "req_01")

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"Started {wid}" in out
    assert '"summary": "implement the request"' in out  # the coder's tokens, streamed
    assert "Prompt: " in out and "with 2 context files" in out
    assert "Stream: coder on 127.0.0.1" in out and "tok/s" in out
    assert "Review: 8-point safety check PASS" in out
    assert "Execute: 4 steps (2 files, 2 commands)" in out  # the criterion is checked as code too
    assert "Verify: acceptance criteria PASS, 0 fix round(s)" in out
    assert "Passed: 1 files created, 1 modified" in out
    project = yaml.safe_load((workspace / ".iter/project.yaml").read_text())
    assert project["requests"][0]["status"] == "passed"

    status = json.loads(iter_cmd(workspace, cli_env, "status", "req_01", "--json").stdout)
    assert status["workflow_status"] == "completed" and status["outcome"] == "passed"
    assert [u["role"] for u in status["usage"]] == ["coder", "coder", "coder", "reviewer", "reviewer"]
    history = iter_cmd(workspace, cli_env, "history", "req_01").stdout
    for expected in (
        "build_prompt (local)",
        "call_model → coder",
        "safety_review → PASS",
        "execute_steps → s1 ok; s2 ok; s3 ok; criterion1 ok",
        "post_review → PASS",
        "completed: passed",
    ):
        assert expected in history, history
    listed = json.loads(iter_cmd(workspace, cli_env, "status", "--json").stdout)
    assert any(row["workflow_id"] == wid and row["outcome"] == "passed" for row in listed)


def test_second_orchestrate_attaches_and_ctrl_c_detaches(
    workspace: Path, cli_env: dict[str, str], fake: FakeModel
) -> None:
    script(fake)
    fake.token_delay_s = 0.05  # a slow coder: several seconds of streaming
    wid = setup_project(workspace, cli_env)
    first = iter_popen(workspace, cli_env, "orchestrate", "--request", "req_01")
    until_running(workspace, cli_env)
    time.sleep(1.0)

    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=30)
    assert first.returncode == 130
    assert "Detached" in err and "iter orchestrate --request req_01" in err
    assert workflow_status(workspace, cli_env) == "running"

    again = iter_cmd(workspace, cli_env, "orchestrate", "--request", "req_01", "--quiet")
    assert again.returncode == 0, again.stderr
    # Attached, or (on a slow machine) it finished meanwhile and is shown: never a second start.
    assert f"Attached to {wid}" in again.stdout or f"has already run ({wid}" in again.stdout, again.stdout
    listed = json.loads(iter_cmd(workspace, cli_env, "status", "--json").stdout)
    assert [row["workflow_id"] for row in listed].count(wid) == 1  # one workflow, never a second start
    assert (workspace / "src/calc/ops.py").read_text().count("def multiply") == 1


def test_pause_and_resume_from_the_cli(workspace: Path, cli_env: dict[str, str], fake: FakeModel) -> None:
    script(fake)
    fake.token_delay_s = 0.03
    setup_project(workspace, cli_env)
    assert iter_cmd(workspace, cli_env, "orchestrate", "--request", "req_01", "--detach").returncode == 0

    paused = iter_cmd(workspace, cli_env, "pause", "req_01")
    assert paused.returncode == 0 and "Pause requested" in paused.stdout
    for _ in range(100):
        state = json.loads(iter_cmd(workspace, cli_env, "status", "req_01", "--json").stdout)
        if any(e["message"] == "paused" for e in state["events"]):
            break
        time.sleep(0.2)
    assert state["paused"] and state["outcome"] == "running"
    assert iter_cmd(workspace, cli_env, "message", "req_01", "keep it short").returncode == 0
    assert iter_cmd(workspace, cli_env, "resume", "req_01").returncode == 0

    for _ in range(100):  # detached: `iter status` sees the end and records it in the project file
        state = json.loads(iter_cmd(workspace, cli_env, "status", "req_01", "--json").stdout)
        if state["outcome"] != "running":
            break
        time.sleep(0.2)
    assert state["outcome"] == "passed"
    assert yaml.safe_load((workspace / ".iter/project.yaml").read_text())["requests"][0]["status"] == "passed"
    assert any("keep it short" in m["content"] for c in fake.received[1:] for m in c["messages"])


class TestNoModelServerYet:
    """The worker's model server (it owns the setting) is down when the request starts and comes up later."""

    @pytest.fixture
    def model_server(self, fake: FakeModel) -> Iterator[FakeModelServer]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        yield FakeModelServer(fake, port=port)  # nothing listens until the test enters it

    def test_orchestrate_says_when_no_model_server_answers(
        self, workspace: Path, cli_env: dict[str, str], fake: FakeModel, model_server: FakeModelServer
    ) -> None:
        port = model_server.port
        script(fake)
        setup_project(workspace, cli_env)
        proc = iter_popen(workspace, cli_env, "orchestrate", "--request", "req_01", "--quiet")
        time.sleep(6)
        with model_server:
            out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert f"waiting: no model server answers at http://127.0.0.1:{port} (ollama)" in err
        waits = [line for line in err.splitlines() if line.startswith("waiting:")]
        assert len(waits) == 1, err  # every retry says the same: once (not a terminal: plain lines)
        assert "StartToClose" not in err and "ITER_LLM_BASE_URL" in err
        assert "Passed:" in out
