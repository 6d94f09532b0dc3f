"""Kill the worker with SIGKILL in the middle of a request, start another: the request completes,
every step applied exactly once, nothing lost, within seconds of the new worker's start."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from temporalio.client import Client

from models.config import Settings
from tests import replies as r
from tests.conftest import REPO, worker_env
from tests.fake_llm import FakeModel
from tests.pipeline import start, wait_for

STEP_SECONDS = 3
RESUME_BOUND_S = 15 + STEP_SECONDS  # the bound, plus the interrupted step's own run time
PLAN = r.plan(
    r.run("s1", f"sleep {STEP_SECONDS}; echo once >> log.txt"),
    r.write("s2", "notes.md", "appended\n", "append"),
    r.run("s3", "echo second >> log.txt"),
    r.verify("s4", "test $(wc -l < log.txt) -eq 2"),
)


def spawn_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = worker_env(settings)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "worker"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.parametrize("kill_in", ["stream", "execute"])
async def test_sigkill_mid_request_completes_exactly_once(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, tmp_path: Path, kill_in: str
) -> None:
    (workspace / "notes.md").write_text("# notes\n")
    fake.token_delay_s = 0.01  # the coder's answer streams for a few seconds
    fake.default("plan", PLAN)
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    first = spawn_worker(settings, tmp_path / "worker1.log")
    try:
        handle = await start(client, settings, workspace)
        state = await wait_for(handle, lambda s: s.phase == kill_in, timeout=60)
        if kill_in == "execute":  # kill while the sleep of s1 runs, after it started
            for _ in range(100):
                if any(f.read_text() for f in (Path(settings.data_dir) / "journals").rglob("r0-s1/status")):
                    break
                await asyncio.sleep(0.05)
        kill(first)
        calls_at_kill = len(fake.received)
        await asyncio.sleep(1.0)
        restarted = time.monotonic()
        second = spawn_worker(settings, tmp_path / "worker2.log")
        try:
            # "Continues": the next model request reaches the server (the coder asked again, or,
            # after an adopted step finished, the reviewer is asked about the result).
            while len(fake.received) == calls_at_kill:
                assert time.monotonic() - restarted < RESUME_BOUND_S, "no progress after the worker came back"
                await asyncio.sleep(0.1)
            resumed = time.monotonic() - restarted
            state = (await asyncio.wait_for(handle.result(), timeout=90)).state
            took = time.monotonic() - restarted
        finally:
            kill(second)
    finally:
        if first.poll() is None:
            kill(first)

    assert state.outcome == "passed", state.error
    assert (workspace / "log.txt").read_text() == "once\nsecond\n"
    assert (workspace / "notes.md").read_text() == "# notes\nappended\n"
    print(f"killed in {kill_in}: went on after {resumed:.1f} s, completed after {took:.1f} s (new worker's start = 0)")
    assert resumed < (15 if kill_in == "stream" else RESUME_BOUND_S)
