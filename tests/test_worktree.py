"""Reversible by construction: each request's steps run in a worktree of its own (iter/<request>),
the user's checkout changes only when a passed request lands (or ``iter apply``), parallel
requests never see each other's files, a folder without git gets a snapshot, a landing over the
user's own edits refuses in one line and loses nothing, and what a step points a symlink at (or a
secret file) never reaches a model or the history. Real Temporal, real git, real subprocesses
(and the real Docker engine for the container's view of ``.git``)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from activities.executor import executor_for
from activities.executor.base import runs_root
from activities.git import git
from activities.worktree import prepare
from models.config import Settings
from models.project import FeatureRequest, Project
from models.request import RequestInput, RequestResult
from models.worktree import PrepareInput
from tests import replies as r
from tests.conftest import EXAMPLE, example_project
from tests.fake_llm import FakeModel
from tests.pipeline import run_request, steps_dir, wait_for
from tests.test_secrets_history import history_text
from workflows.request import RequestWorkflow

pytestmark = pytest.mark.usefixtures("worker")
ITER = str(Path(sys.executable).parent / "iter")


def with_mode(settings: Settings, mode: str) -> Settings:
    return settings.model_copy(update={"worktree": settings.worktree.model_copy(update={"mode": mode})})


def passing(fake: FakeModel, *plans: dict[str, Any]) -> None:
    fake.script("plan", *plans)
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())


def branches(workspace: Path) -> list[str]:
    out = subprocess.run(["git", "branch", "--list", "iter/*", "--format=%(refname:short)"], cwd=workspace,
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    return out.split()


def cli(workspace: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ITER, *args], cwd=workspace, env=env, capture_output=True, text=True, timeout=120)


async def start_request(
    client: Client, settings: Settings, workspace: Path, project: Project, request_id: str
) -> WorkflowHandle[Any, RequestResult]:
    inp = RequestInput(project=project, request_id=request_id, workspace=str(workspace), settings=settings)
    wid = f"iter-calc-{request_id}-{uuid.uuid4().hex[:8]}"
    return await client.start_workflow(RequestWorkflow.run, inp, id=wid, task_queue=settings.temporal.task_queue)


async def test_checkout_untouched_while_it_runs_then_the_passed_change_lands(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    (workspace / "mine.txt").write_text("my unfinished edit\n")  # uncommitted: the request sees it, keeps it
    passing(fake, r.plan(r.write("s1", "new.txt", "made\n"), r.run("s2", "cat mine.txt > seen.txt; sleep 5"),
                         r.verify("s3", "test -s seen.txt")))  # fmt: skip
    handle = await start_request(client, settings, workspace, example_project(), "req_01")
    running = await wait_for(handle, lambda s: s.phase == "execute" and s.sandbox is not None, timeout=60)
    ws = steps_dir(running)
    assert ws != workspace and ws.is_relative_to(Path(settings.data_dir))
    for _ in range(100):
        if (ws / "seen.txt").exists():
            break
        await asyncio.sleep(0.1)
    assert (ws / "new.txt").read_text() == "made\n" and (ws / "seen.txt").read_text() == "my unfinished edit\n"
    assert not (workspace / "new.txt").exists() and not (workspace / "seen.txt").exists()  # untouched meanwhile
    assert branches(workspace) == ["iter/req_01"]

    state = (await handle.result()).state
    assert state.outcome == "passed", state.error
    assert state.landing is not None and state.landing.landing == "applied", state.landing
    assert (workspace / "new.txt").read_text() == "made\n" and (workspace / "seen.txt").exists()
    assert (workspace / "mine.txt").read_text() == "my unfinished edit\n"
    assert not ws.exists() and branches(workspace) == []  # landed: the worktree and the branch are gone
    assert "new.txt" in (await git(workspace, "status", "--porcelain")) and "iter" not in (
        await git(workspace, "log", "--format=%s")
    )  # applied, not committed


async def test_parallel_requests_of_one_project_never_see_each_others_files(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    project = example_project()
    project.requests.append(FeatureRequest(id="req_02", description="another change"))
    (workspace / "shared.txt").write_text("start\n")
    passing(
        fake,
        *(
            r.plan(r.write("s1", f"{me}.txt", f"{me}\n"), r.write("s2", "shared.txt", f"{me} was here\n", "append"),
                   r.run("s3", "sleep 2"), r.verify("s4", f"test ! -e {other}.txt && test $(wc -l < shared.txt) = 2"))
            for me, other in (("a", "b"), ("b", "a"))
        ),
    )  # fmt: skip
    handles = [await start_request(client, settings, workspace, project, rid) for rid in ("req_01", "req_02")]
    states = [(await h.result()).state for h in handles]
    assert [s.outcome for s in states] == ["passed", "passed"], [s.error for s in states]
    assert all(res.ok for s in states for res in s.results), [s.results for s in states]
    assert {s.sandbox.path for s in states if s.sandbox} and states[0].sandbox != states[1].sandbox
    assert (workspace / "a.txt").read_text() == "a\n" and (workspace / "b.txt").read_text() == "b\n"
    # Both appended to one file: the second landing puts its line after the first's, refusing nothing.
    shared = (workspace / "shared.txt").read_text().splitlines()
    assert shared[0] == "start" and sorted(shared[1:]) == ["a was here", "b was here"], shared
    assert [s.landing.landing for s in states if s.landing] == ["applied", "applied"]


async def test_a_folder_without_git_gets_a_snapshot_and_the_change_lands(
    client: Client, settings: Settings, tmp_path: Path, fake: FakeModel
) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(EXAMPLE, plain)
    before = {p: p.read_bytes() for p in plain.rglob("*") if p.is_file()}
    passing(fake, r.plan(r.write("s1", "src/calc/ops.py", r.MULTIPLY, "append"), r.run("s2", "sleep 1"),
                         r.verify("s3")))  # fmt: skip
    handle = await start_request(client, settings, plain, example_project(), "req_01")
    running = await wait_for(handle, lambda s: s.phase == "execute" and s.sandbox is not None, timeout=60)
    assert running.sandbox is not None and running.sandbox.kind == "snapshot"
    assert {p: p.read_bytes() for p in plain.rglob("*") if p.is_file() and ".iter" not in p.parts} == before
    state = (await handle.result()).state
    assert state.outcome == "passed", state.error
    assert state.landing is not None and state.landing.landing == "applied", state.landing
    assert (plain / "src/calc/ops.py").read_text().count("def multiply") == 1
    assert not (plain / ".git").exists() and (plain / ".iter/snapshot.git").is_dir()


async def test_branch_mode_then_a_conflicting_edit_refuses_in_one_line_and_loses_nothing(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, cli_env: dict[str, str]
) -> None:
    passing(fake, r.plan(r.write("s1", "src/calc/ops.py", r.MULTIPLY, "append"), r.verify("s2")))
    state = await run_request(client, with_mode(settings, "branch"), workspace, example_project())
    assert state.outcome == "passed" and state.landing and state.landing.landing == "branch", state.landing
    assert "def multiply" not in (workspace / "src/calc/ops.py").read_text()  # not landed: on its branch

    cli(workspace, cli_env, "project", "create", "--name", "calc")
    cli(workspace, cli_env, "request", "add", "--description", "Add multiply")
    shown = cli(workspace, cli_env, "diff", "req_01")
    assert shown.returncode == 0 and "+def multiply" in shown.stdout, shown.stderr
    original = (workspace / "src/calc/ops.py").read_text()
    mine = "# my own edit\n" + original  # not an append: it cannot be composed with the request's
    (workspace / "src/calc/ops.py").write_text(mine)

    refused = cli(workspace, cli_env, "apply", "req_01")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "changed in your checkout since req_01 started (src/calc/ops.py)" in " ".join(refused.stderr.split())
    assert (workspace / "src/calc/ops.py").read_text() == mine and branches(workspace) == ["iter/req_01"]

    again = cli(workspace, cli_env, "orchestrate", "--request", "req_01")
    assert again.returncode == 1 and "holds the change of an earlier run of req_01" in " ".join(again.stderr.split())

    (workspace / "src/calc/ops.py").write_text(original)  # the user undoes the edit
    applied = cli(workspace, cli_env, "apply", "req_01")
    assert applied.returncode == 0 and "applied to your checkout" in applied.stdout, applied.stderr
    assert (workspace / "src/calc/ops.py").read_text().count("def multiply") == 1 and branches(workspace) == []


async def test_discard_drops_a_failed_requests_change_and_keeps_the_checkout(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, cli_env: dict[str, str]
) -> None:
    fake.default("plan", r.plan(r.write("s1", "half.txt", "half done\n"), r.verify("s2", "false")))
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_fail())
    state = await run_request(client, settings, workspace, example_project())
    assert state.outcome == "failed" and state.landing and state.landing.landing == "kept", state.landing
    assert not (workspace / "half.txt").exists() and branches(workspace) == ["iter/req_01"]
    cli(workspace, cli_env, "project", "create", "--name", "calc")
    dropped = cli(workspace, cli_env, "discard", "req_01")
    assert dropped.returncode == 0 and "discarded iter/req_01" in dropped.stdout, dropped.stderr
    assert branches(workspace) == [] and not (workspace / "half.txt").exists()


async def test_a_symlink_out_of_the_workspace_never_reaches_a_model_nor_the_history(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, tmp_path: Path
) -> None:
    outside = tmp_path / "outside-secret.txt"
    outside.write_text("TOPSECRET-7f3a\n")
    (workspace / "README.md").unlink()
    (workspace / "README.md").symlink_to(outside)  # a selected file, replaced by an earlier step
    project = example_project()
    project.selected_files.append("README.md")
    # A file step writes docs.md, then a command replaces it with a symlink out (the gate lets `ln -s` by).
    passing(fake, r.plan(r.write("s1", "docs.md", "docs\n"), r.run("s2", f"ln -sf {outside} docs.md"),
                         r.verify("s3", "true")))  # fmt: skip
    fake.script("post_review", r.post_info(("read_file", "README.md")))
    handle = await start_request(client, settings, workspace, project, "req_01")
    state = (await handle.result()).state
    assert state.outcome == "passed" and state.info_rounds == 1, state.error
    sent = str(fake.received)
    assert "TOPSECRET" not in sent
    assert "README.md is a symlink that leads out of the workspace" in sent  # the prompt
    assert "docs.md is a symlink that leads out of the workspace" in sent  # the reviewer's view of the files
    raw, decoded = await history_text(client, handle.id)
    assert b"TOPSECRET" not in raw and "TOPSECRET" not in decoded
    # Nor does the landing carry the step's symlink into the checkout.
    assert state.landing is not None and state.landing.landing == "refused", state.landing
    assert "docs.md (a symlink out of the checkout)" in state.landing.message
    assert not (workspace / "docs.md").exists()


async def test_secret_files_are_refused_by_files_select_and_by_reads(
    workspace: Path, cli_env: dict[str, str], client: Client, settings: Settings, fake: FakeModel
) -> None:
    (workspace / ".env").write_text("API_KEY=sk-live-123\n")
    (workspace / ".envrc").write_text("export TOKEN=abc\n")
    cli(workspace, cli_env, "project", "create", "--name", "calc")
    for name in (".env", ".envrc"):
        done = cli(workspace, cli_env, "files", "select", name)
        assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert f"refusing {name}: it is a secret file" in done.stderr
    assert "selected_files: []" in (workspace / ".iter/project.yaml").read_text()
    passing(fake, r.plan(r.verify("s1", "true")))
    fake.script("post_review", r.post_info(("read_file", ".envrc"), ("read_file", ".env")))
    state = await run_request(client, settings, workspace, example_project())
    assert state.outcome == "passed" and state.info_rounds == 1, state.error
    sent = str(fake.received)
    assert "sk-live-123" not in sent and "TOKEN=abc" not in sent
    assert "refused" in sent and ".envrc" in sent


@pytest.mark.docker
async def test_inside_the_container_nothing_under_git_is_writable(
    workspace: Path, settings: Settings, docker_image: str, tmp_path: Path
) -> None:
    sandbox = await prepare(PrepareInput(origin=str(workspace), item="req_01", run_key="wf.r1", settings=settings))
    ws = Path(sandbox.path)
    docker = settings.executor.model_copy(update={"backend": "docker", "image": docker_image})
    ex = executor_for(docker, ws, "wf.r1", tmp_path / "data-x")
    hooks = Path(sandbox.git_dir) / "hooks"
    try:
        attempts = {
            "hook": f"echo 'touch /tmp/pwned' > {hooks}/pre-commit",
            "config": "git config core.fsmonitor 'touch /tmp/pwned'",
            "gitfile": "echo 'gitdir: /tmp/evil' > .git",
            "index": "git add -A",
            "status": "git status --porcelain >/dev/null && echo readable",
        }
        outcomes = {}
        for name, command in attempts.items():
            run_dir = runs_root(tmp_path / "data-x", "wf.r1") / name
            outcomes[name] = await ex.run(command, run_dir, 30, 10_000)
    finally:
        await ex.close()
    for name in ("hook", "config", "gitfile", "index"):
        assert not outcomes[name].ok, (name, outcomes[name].output)
        assert "Read-only file system" in outcomes[name].output or "read-only" in outcomes[name].output.lower()
    assert outcomes["status"].ok and "readable" in outcomes["status"].output, outcomes["status"].output
    assert not (hooks / "pre-commit").exists()
    assert "fsmonitor" not in (Path(sandbox.git_dir) / "config").read_text()
    assert (ws / ".git").read_text().startswith("gitdir: ") and "/tmp/evil" not in (ws / ".git").read_text()


async def test_discard_force_removes_the_worktree_a_dead_run_left(
    workspace: Path, settings: Settings, cli_env: dict[str, str]
) -> None:
    # A run that made its worktree, then died for good (its workflow terminated before landing).
    sandbox = await prepare(PrepareInput(origin=str(workspace), item="req_01", run_key="dead.r1", settings=settings))
    (Path(sandbox.path) / "half.txt").write_text("half\n")
    cli(workspace, cli_env, "project", "create", "--name", "calc")
    refused = cli(workspace, cli_env, "discard", "req_01")
    assert refused.returncode == 1 and "iter discard req_01 --force" in " ".join(refused.stderr.split())
    assert Path(sandbox.root).exists() and branches(workspace) == ["iter/req_01"]
    forced = cli(workspace, cli_env, "discard", "req_01", "--force")
    assert forced.returncode == 0, forced.stderr
    assert not Path(sandbox.root).exists() and branches(workspace) == [] and not (workspace / "half.txt").exists()
    assert "req_01" not in await git(workspace, "worktree", "list")
