"""Each step's journal is out of every step's reach, and exactly once holds without gaps: a retry
never applies a completed step again (file steps included), a stopping worker leaves its step to
the next one, and a request that ends leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.execute import run_steps
from activities.executor import executor_for
from activities.executor.base import runs_root
from models.config import Settings
from models.plan import STEP_ADAPTER
from models.request import ExecuteInput
from tests import replies as r
from tests.fake_llm import FakeModel
from tests.pipeline import start, steps_dir, wait_for
from tests.test_crash import kill, spawn_worker

FORGED = "42 passed (forged)"
ATTEMPT_HANDOVER_S = 120
# A step that knows where journals live (the docs say: under the data dir) and plants a finished,
# passing record for the verify step after it, in every place a record was ever read from.
FORGE = """
import json, pathlib, sys
data, key = pathlib.Path(sys.argv[1]), sys.argv[2]
outcome = {"exit_code": 0, "output": "42 passed (forged)", "duration_s": 0.1}
result = {"step_id": "s2", "run_key": "r0-s2", "kind": "verify", "ok": True, "exit_code": 0}
result["output"] = outcome["output"]
planted = {
    data / "journals" / key / "r0-s2": {"outcome.json": outcome, "result.json": {"data": result, "seal": "0" * 64},
                                         "started.json": {"data": {"token": "x"}, "seal": "0" * 64}},
    data / "streams" / key / "r0-s2": {},
    pathlib.Path(".iter/runs") / key / "r0-s2": {"outcome.json": outcome},
}
for folder, files in planted.items():
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, value in files.items():
            (folder / name).write_text(json.dumps(value))
        (folder / "status").write_text("1\\n0\\n")
        (folder / "rc").write_text("0\\n")
        (folder / "out").write_text("42 passed (forged)\\n")
        print("planted", folder)
    except OSError as exc:
        print("refused", folder, exc.strerror)
"""


@pytest.mark.parametrize("backend", ["local", pytest.param("docker", marks=pytest.mark.docker)])
async def test_a_step_cannot_forge_the_record_of_a_later_verify(
    backend: str, settings: Settings, workspace: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "docker":
        settings.executor.image = request.getfixturevalue("docker_image")
    settings.executor.backend = backend  # type: ignore[assignment]
    data = Path(settings.data_dir)
    key = f"iter-calc-req_01-{uuid.uuid4().hex[:6]}.run"
    (workspace / "forge.py").write_text(FORGE)
    steps = [
        STEP_ADAPTER.validate_python({"id": "s1", "type": "command", "command": f"python3 forge.py {data} {key}"}),
        STEP_ADAPTER.validate_python({"id": "s2", "type": "verify", "command": "echo really ran > proof.txt; exit 3"}),
    ]
    inp = ExecuteInput(
        workflow_id=key,
        workspace=str(workspace),
        steps=steps,
        run_keys=["r0-s1", "r0-s2"],
        settings=settings,
        journal_seal=uuid.uuid4().hex,
    )
    try:
        out = await run_steps(inp)
        again = await run_steps(inp)  # a retried attempt reads the records back
    finally:
        await executor_for(settings.executor, workspace, key, data).close()

    forger, verify = out.results
    # Locally the plant lands in the real journal (the step runs as the worker's user) and fails the
    # seal; in a container the journal is not there at all (what it wrote went to its own /tmp).
    assert forger.ok and "planted" in forger.output, forger.output
    assert verify.exit_code == 3 and not verify.ok and FORGED not in verify.output, verify
    assert (workspace / "proof.txt").read_text() == "really ran\n"  # it really ran
    assert again.results == out.results
    assert (runs_root(data, key) / "r0-s2" / "result.json").exists()  # the journal is the data dir's


async def _until_step_runs(settings: Settings, key: str) -> None:
    """Until the step's journal has a status (its process started), for up to 10 s."""
    journals = Path(settings.data_dir) / "journals"
    for _ in range(200):
        if any(f.read_text() for f in journals.rglob(f"{key}/status")):
            return
        await asyncio.sleep(0.05)


async def test_two_appends_then_a_sigkill_in_a_later_command_apply_once_and_the_verify_runs(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, tmp_path: Path
) -> None:
    (workspace / "notes.md").write_text("# notes\n")
    fake.default(
        "plan",
        r.plan(
            r.write("s1", "notes.md", "one\n", "append"),
            r.write("s2", "notes.md", "two\n", "append"),
            r.run("s3", "sleep 3; echo once >> log.txt"),
            r.verify("s4", "cat notes.md log.txt"),
        ),
    )
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    first = spawn_worker(settings, tmp_path / "worker1.log")
    second = None
    try:
        handle = await start(client, settings, workspace)
        await wait_for(handle, lambda s: s.phase == "execute", timeout=60)
        await _until_step_runs(settings, "r0-s3")
        kill(first)
        second = spawn_worker(settings, tmp_path / "worker2.log")
        state = (await asyncio.wait_for(handle.result(), timeout=120)).state
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                kill(proc)

    assert state.outcome == "passed", state.error
    assert [(res.step_id, res.ok) for res in state.results] == [("s1", True), ("s2", True), ("s3", True), ("s4", True)]
    assert state.results[3].output == "# notes\none\ntwo\nonce\n"
    assert (workspace / "notes.md").read_text() == "# notes\none\ntwo\n"
    assert (workspace / "log.txt").read_text() == "once\n"


async def test_a_graceful_stop_leaves_the_running_step_to_the_next_worker(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, tmp_path: Path
) -> None:
    fake.default("plan", r.plan(r.run("s1", "sleep 4; echo once >> log.txt"), r.verify("s2", "cat log.txt")))
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    first = spawn_worker(settings, tmp_path / "worker1.log")
    second = None
    try:
        handle = await start(client, settings, workspace)
        await wait_for(handle, lambda s: s.phase == "execute", timeout=60)
        await _until_step_runs(settings, "r0-s1")
        pid = int(next((Path(settings.data_dir) / "journals").rglob("r0-s1/status")).read_text().split()[0])
        stopping = time.monotonic()
        first.send_signal(signal.SIGTERM)
        await asyncio.to_thread(first.wait, 30)
        stopped_in = time.monotonic() - stopping
        assert os.path.exists(f"/proc/{pid}"), "the worker killed its step on a graceful stop"
        assert not (workspace / "log.txt").exists()  # still running: the stop did not wait for it
        second = spawn_worker(settings, tmp_path / "worker2.log")
        state = (await asyncio.wait_for(handle.result(), timeout=90)).state
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                kill(proc)

    assert state.outcome == "passed", state.error
    assert (workspace / "log.txt").read_text() == "once\n"  # adopted, not started again
    print(f"worker stopped {stopped_in:.1f} s after SIGTERM; the next worker adopted the step")
    assert stopped_in < 15, f"the stop took {stopped_in:.1f} s"


async def test_a_terminated_request_leaves_no_process_and_no_journal(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, tmp_path: Path
) -> None:
    marker = f"{200 + uuid.uuid4().int % 99}"
    fake.default("plan", r.plan(r.run("s1", f"sleep {marker}; echo late >> log.txt", timeout_s=400), r.verify("s2")))
    fake.default("safety_review", r.safety_pass())
    first = spawn_worker(settings, tmp_path / "worker1.log")
    second = None
    try:
        handle = await start(client, settings, workspace)
        state = await wait_for(handle, lambda s: s.phase == "execute", timeout=60)
        await _until_step_runs(settings, "r0-s1")
        kill(first)  # nothing of this worker will release the request
        await handle.terminate("the user gave up")
        assert _sleepers(marker), "the step should still run until someone sweeps it"
        second = spawn_worker(settings, tmp_path / "worker2.log")
        for _ in range(300):
            if not _sleepers(marker) and not (Path(settings.data_dir) / "journals" / state.run_key).exists():
                break
            await asyncio.sleep(0.1)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                kill(proc)
    assert _sleepers(marker) == [], "the terminated request's step still runs"
    assert not (Path(settings.data_dir) / "journals" / state.run_key).exists()
    assert not (workspace / "log.txt").exists()


def _sleepers(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", marker.encode()]:
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.timeout(ATTEMPT_HANDOVER_S * 6)  # eleven hand-overs: seconds each when idle, tens under load
async def test_execute_attempts_never_run_out_while_the_step_lives(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, tmp_path: Path
) -> None:
    """The issue's case: a worker stopped at every attempt. Each stop hands the attempt on at once
    (so this takes seconds, not heartbeat timeouts); after more stops than the old limit of 10
    attempts, the step still runs once and the request passes."""
    stops = 11
    wait_for_go = "for i in $(seq 1 1800); do [ -f go ] && break; sleep 0.2; done; echo once >> log.txt"
    fake.default("plan", r.plan(r.run("s1", wait_for_go, timeout_s=600), r.verify("s2", "cat log.txt")))
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    workers = [spawn_worker(settings, tmp_path / "worker-0.log")]
    try:
        handle = await start(client, settings, workspace)
        running = await wait_for(handle, lambda s: s.phase == "execute", timeout=60)
        for n in range(1, stops + 1):
            # The next attempt waits out the retry backoff (up to 10 s) and the new worker's start-up,
            # which on a loaded 2-core CI machine takes tens of seconds: allow two minutes each.
            deadline = time.monotonic() + ATTEMPT_HANDOVER_S
            while time.monotonic() < deadline:  # this worker has the attempt (it heartbeats it)
                desc = await handle.describe()
                pending = [
                    p for p in desc.raw_description.pending_activities if p.activity_type.name == "execute_steps"
                ]
                if (
                    pending
                    and pending[0].attempt == n
                    and pending[0].last_worker_identity.startswith(str(workers[-1].pid))
                ):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"attempt {n} never reached worker {workers[-1].pid}")
            workers[-1].send_signal(signal.SIGTERM)
            await asyncio.to_thread(workers[-1].wait, 30)
            workers.append(spawn_worker(settings, tmp_path / f"worker-{n}.log"))
        (steps_dir(running) / "go").write_text("")  # the step (in the request's worktree) may end now
        state = (await asyncio.wait_for(handle.result(), timeout=120)).state
    finally:
        for proc in workers:
            if proc.poll() is None:
                kill(proc)

    assert state.outcome == "passed", state.error
    assert (workspace / "log.txt").read_text() == "once\n"
    history = await handle.fetch_history()
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert max(attempts) > stops, attempts  # more attempts than the old limit, none of them wasted a run
