"""Days, not minutes: a long session continues as new with every run's history bounded and its
state intact; a worker killed mid-iteration loses nothing and repeats nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from temporalio.client import Client, WorkflowExecutionStatus

from cli.project_store import scope
from models.config import Settings
from models.project import session_workflow_id
from models.session import MAX_NOTES_KEPT, MAX_SUMMARIES_KEPT
from tests import replies as r
from tests import session_replies as s
from tests.conftest import REPO, worker_env
from tests.fake_llm import FakeModel
from tests.pipeline import steps_dir
from workflows.session import SessionWorkflow

LONG_ITERATIONS = int(os.environ.get("ITER_TEST_LONG_ITERATIONS", "210"))
WORK_EVERY = 10  # every tenth iteration runs steps and commits; the others manage tasks and notes
MAX_EVENTS_PER_RUN = 10_000


async def run_ids(client: Client, workflow_id: str) -> list[str]:
    """Every run of the workflow, oldest first, across continue_as_new."""
    ids = []
    async for wf in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
        ids.append((wf.start_time, wf.run_id))
    return [rid for _, rid in sorted(ids)]


async def test_long_session_continues_as_new_with_bounded_history_and_intact_state(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None
) -> None:
    n = LONG_ITERATIONS
    spec = s.write_spec(workspace, "# Many small things\n\nNo checkboxes: the planner makes the tasks.\n")
    s.reviewers_pass(fake)
    tasks = [{"content": f"thing {i}", "priority": 2} for i in range(1, n)]
    fake.script("session_plan", s.session_plan(summary="plan the work", new_tasks=tasks))
    for i in range(2, n + 1):
        task = str(i - 1)
        if i % WORK_EVERY == 0:
            plan = s.append_plan(
                "log.txt", f"line {i}\n", task_id=task, action="create" if i == WORK_EVERY else "append"
            )
        else:
            plan = s.session_plan(
                summary=f"thing {task} needs no code", task_updates=[{"id": task, "status": "completed"}]
            )
        if i == n:
            plan["session_complete"] = True
        plan["notes"] = [{"type": "learning", "content": f"learned in iteration {i}"}]
        fake.script("session_plan", plan)
    inp = s.session_input(settings, workspace, spec, history_limit=800)
    handle = await s.start_session(client, settings, inp)
    started = time.monotonic()
    await s.wait_state(handle, lambda st: st.iteration >= n // 2, timeout=240)
    await handle.signal(SessionWorkflow.message, "halfway message")
    state = await asyncio.wait_for(handle.result(), 240)
    elapsed = time.monotonic() - started
    assert state.status == "completed", state.events[-5:]
    assert state.iteration == n
    assert [t.status for t in state.tasks] == ["completed"] * (n - 1)
    # Notes and summaries are windowed (bounded state); what fell out is counted, history keeps it.
    assert len(state.notes) == min(n - 1, MAX_NOTES_KEPT) and state.notes_dropped == n - 1 - len(state.notes)
    assert state.notes[-1].content == f"learned in iteration {n}"
    kept = len(state.summaries)
    assert kept == min(n, MAX_SUMMARIES_KEPT) and state.summaries_dropped == n - kept
    assert [x.iteration for x in state.summaries] == list(range(n - kept + 1, n + 1))
    assert state.commits == n // WORK_EVERY
    assert (workspace / "log.txt").read_text() == "".join(f"line {i}\n" for i in range(WORK_EVERY, n + 1, WORK_EVERY))
    assert not (Path(inp.settings.data_dir) / "journals" / state.journal_key).exists()  # journals go with each run
    prompts = [c["messages"][1]["content"] for c in fake.calls("session_plan")]
    assert sum("halfway message" in p for p in prompts) == 1
    runs = await run_ids(client, session_workflow_id(inp.name, scope(Path(inp.workspace))))
    counts = [
        len([e async for e in client.get_workflow_handle(handle.id, run_id=rid).fetch_history_events()]) for rid in runs
    ]
    print(
        f"\n{n} iterations in {elapsed:.1f} s ({elapsed / n * 1000:.0f} ms each); "
        f"runs {len(runs)}, events per run {counts}"
    )
    assert len(runs) == state.runs >= 2
    assert max(counts) < MAX_EVENTS_PER_RUN
    # The prompt stays bounded however long the session grows.
    assert max(len(p) for p in prompts) <= settings.llm.num_ctx * 4 // 2


def start_worker(settings: Settings, tmp_path: Path, log_name: str) -> subprocess.Popen[bytes]:
    env = worker_env(settings, XDG_CONFIG_HOME=str(tmp_path / "config"))
    log = (tmp_path / log_name).open("wb")
    return subprocess.Popen([sys.executable, "-m", "worker"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


async def wait_file(path: Path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never held {text!r}")
        await asyncio.sleep(0.05)


async def test_worker_killed_mid_iteration_session_goes_on_nothing_lost_nothing_twice(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={"temporal": settings.temporal.model_copy(update={"task_queue": f"{settings.temporal.task_queue}-kill"})}
    )
    spec = s.write_spec(workspace, "# Two\n\n- [ ] First\n- [ ] Second\n")
    s.reviewers_pass(fake)
    slow = "echo run >> count.txt && sleep 2 && echo done >> count.txt"
    fake.script(
        "session_plan",
        s.session_plan(
            r.write("s1", "log.txt", "one\n"),
            r.run("s2", slow),
            r.verify("s3", 'test "$(grep -c run count.txt)" = 1'),
            summary="first, with a slow step",
        ),
        s.append_plan("log.txt", "two\n", session_complete=True),
    )
    first = start_worker(settings, tmp_path, "worker1.log")
    second = None
    try:
        handle = await s.start_session(client, settings, s.session_input(settings, workspace, spec))
        state = await s.wait_state(handle, lambda st: st.sandbox is not None)
        await wait_file(steps_dir(state) / "count.txt", "run")
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = start_worker(settings, tmp_path, "worker2.log")
        state = await asyncio.wait_for(handle.result(), 90)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
    assert state.status == "completed", state.events[-6:]
    assert (workspace / "log.txt").read_text() == "one\ntwo\n"
    assert (workspace / "count.txt").read_text() == "run\ndone\n"  # the slow step ran once, and to its end
    assert [x.outcome for x in state.summaries] == ["passed", "passed"]
    assert len(fake.calls("session_plan")) == 2
    log = s.git_log(workspace)
    assert log[:2] == [f"iter {state.name}: task #2: Second", f"iter {state.name}: task #1: First"]
    assert log[2] == "example"  # one commit per iteration: none twice
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    retried = [
        e.activity_task_started_event_attributes.attempt
        async for e in handle.fetch_history_events()
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert max(retried) >= 2  # the step's activity really died with the first worker and was taken over
