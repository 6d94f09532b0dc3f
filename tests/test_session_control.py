"""Steering a session the way a user does: iter build (limits, resume, reset, templates), iter
message, iter pause/resume, iter stop, iter status; the session lives on when the CLI exits."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError

from cli.project_store import scope
from models.config import Settings
from models.project import session_workflow_id
from tests import replies as r
from tests import session_replies as s
from tests.conftest import REPO
from tests.fake_llm import FakeModel
from tests.pipeline import steps_dir
from workflows.session import SessionWorkflow

ITER = str(REPO / ".venv" / "bin" / "iter")


async def iter_cli(env: dict[str, str], cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The CLI in a thread: the in-process worker shares this event loop and must keep serving."""
    return await asyncio.to_thread(
        subprocess.run, [ITER, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


async def test_messages_reach_the_next_prompt_once(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None, cli_env: dict[str, str]
) -> None:
    s.reviewers_pass(fake)
    fake.script(
        "session_plan",
        s.append_plan("a.txt", "one\n", action="create"),
        s.append_plan("a.txt", "two\n", session_complete=True),
    )
    spec = s.write_spec(workspace, "# Two\n- [ ] one\n- [ ] two\n")
    inp = s.session_input(settings, workspace, spec)
    handle = await s.start_session(client, settings, inp, start_signal="pause")
    sent = await iter_cli(cli_env, workspace, "message", inp.name, "Prefer tabs; x; rm -rf ~ is just text")
    assert sent.returncode == 0, sent.stderr
    await handle.signal(SessionWorkflow.message, "second message")
    assert (await handle.query(SessionWorkflow.status)).pending_messages == [
        "Prefer tabs; x; rm -rf ~ is just text", "second message"
    ]  # fmt: skip
    resumed = await iter_cli(cli_env, workspace, "resume", inp.name)
    assert resumed.returncode == 0, resumed.stderr
    state = await handle.result()
    assert state.status == "completed"
    first, second = (c["messages"][1]["content"] for c in fake.calls("session_plan"))
    assert "## Messages from the user\n\nPrefer tabs; x; rm -rf ~ is just text\nsecond message" in first
    assert "Prefer tabs" not in second and "## Messages from the user\n\n(none)" in second


async def _started(handle: Any, name: str) -> bool:
    """The session's step wrote ``name`` in its worktree (False while the session is not there yet)."""
    try:
        state = await handle.query(SessionWorkflow.status)
    except RPCError:
        return False
    return state.sandbox is not None and (steps_dir(state) / name).exists()


async def test_pause_waits_for_the_running_step_and_resume_goes_on(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None, cli_env: dict[str, str]
) -> None:
    s.reviewers_pass(fake)
    fake.script(
        "session_plan",
        s.session_plan(
            r.run("s1", "touch s1.started && sleep 1.5 && echo a >> p.txt"),
            r.run("s2", "echo b >> p.txt"),
            r.verify("s3", "grep -q b p.txt"),
            session_complete=True,
        ),
    )
    spec = s.write_spec(workspace, "# One\n- [ ] slow steps\n")
    inp = s.session_input(settings, workspace, spec)
    handle = await s.start_session(client, settings, inp)
    await s.wait_state(handle, lambda st: st.sandbox is not None and (steps_dir(st) / "s1.started").exists())
    paused = await iter_cli(cli_env, workspace, "pause", inp.name)
    assert paused.returncode == 0, paused.stderr
    state = await s.wait_state(handle, lambda st: st.paused and any(e.message == "paused" for e in st.events))
    await asyncio.sleep(0.5)
    assert (steps_dir(state) / "p.txt").read_text() == "a\n"  # the running step finished; the next one waits
    assert state.current.results == ["s1 ok"]
    shown = await iter_cli(cli_env, workspace, "status", inp.name)
    assert "paused" in shown.stdout and "▶ #1 P2 slow steps" in shown.stdout
    await handle.signal(SessionWorkflow.resume)
    state = await asyncio.wait_for(handle.result(), 30)
    assert state.status == "completed" and (workspace / "p.txt").read_text() == "a\nb\n"


async def test_build_limits_resumes_where_it_stopped_and_reset_starts_afresh(
    settings: Settings, workspace: Path, fake: FakeModel, worker: None, cli_env: dict[str, str]
) -> None:
    s.reviewers_pass(fake)
    s.write_spec(workspace, "# Three\n- [ ] one\n- [ ] two\n- [ ] three\n", "specs/three.md")
    fake.script(
        "session_plan",
        s.append_plan("a.txt", "one\n", action="create"),
        s.append_plan("a.txt", "two\n"),
        s.append_plan("a.txt", "again\n"),
    )
    build = ("build", "--spec", "specs/three.md", "--iterations", "1", "--headless", "--quiet")
    first = await iter_cli(cli_env, workspace, *build)
    assert first.returncode == 0, first.stderr
    assert "Started session three" in first.stdout and "Session three limit after 1 iteration(s): 1/3" in first.stdout
    second = await iter_cli(cli_env, workspace, *build, "--json")
    assert second.returncode == 0, second.stderr
    state = json.loads(second.stdout[second.stdout.index("{") :])
    assert state["iteration"] == 2 and [t["status"] for t in state["tasks"]] == ["completed", "completed", "remaining"]
    assert [x["task_id"] for x in state["summaries"]] == ["1", "2"]
    third = await iter_cli(cli_env, workspace, *build, "--reset", "--json")
    assert third.returncode == 0, third.stderr
    fresh = json.loads(third.stdout[third.stdout.index("{") :])
    assert fresh["uid"] != state["uid"] and fresh["iteration"] == 1
    assert [t["status"] for t in fresh["tasks"]] == ["completed", "remaining", "remaining"]
    assert (workspace / "a.txt").read_text() == "one\ntwo\nagain\n"  # reset forgets the session, not the code
    log = s.git_log(workspace)
    assert log[:3] == ["iter three: task #1: one", "iter three: task #2: two", "iter three: task #1: one"]


async def test_session_lives_on_when_the_cli_exits_and_build_attaches_again(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None, cli_env: dict[str, str]
) -> None:
    s.reviewers_pass(fake)
    s.write_spec(workspace, "# Two\n- [ ] one\n- [ ] two\n")
    fake.script(
        "session_plan",
        s.session_plan(
            r.run("s1", "touch one.started && sleep 1 && echo one > one.txt"), r.verify("s2", "test -s one.txt")
        ),
        s.session_plan(
            r.run("s1", "sleep 1 && echo two > two.txt"), r.verify("s2", "test -s two.txt"), session_complete=True
        ),
    )
    proc = subprocess.Popen([ITER, "build", "--headless", "--quiet"], cwd=workspace, env=cli_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    handle = client.get_workflow_handle_for(SessionWorkflow.run, session_workflow_id("SPEC", scope(workspace)))
    try:
        while not await _started(handle, "one.started"):
            await asyncio.sleep(0.05)
            assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the CLI detaches
        _out, err = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Detached; the session goes on" in err
    assert (await handle.describe()).status is not None
    again = await iter_cli(cli_env, workspace, "build", "--headless", "--quiet")
    assert again.returncode == 0, again.stderr
    assert "Attached to session SPEC" in again.stdout and "Session SPEC completed after 2 iteration(s)" in again.stdout
    assert (workspace / "one.txt").read_text() == "one\n" and (workspace / "two.txt").read_text() == "two\n"
    state = await handle.result()
    assert [x.outcome for x in state.summaries] == ["passed", "passed"]


async def test_stop_ends_after_the_current_iteration(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None, cli_env: dict[str, str]
) -> None:
    s.reviewers_pass(fake)
    spec = s.write_spec(workspace, "# Many\n- [ ] one\n- [ ] two\n- [ ] three\n")
    fake.script(
        "session_plan",
        s.session_plan(
            r.run("s1", "touch started && sleep 4 && echo one > one.txt"), r.verify("s2", "test -s one.txt")
        ),
        *(s.append_plan("a.txt", "more\n", action="create") for _ in range(3)),
    )
    inp = s.session_input(settings, workspace, spec)
    handle = await s.start_session(client, settings, inp)
    await s.wait_state(handle, lambda st: st.sandbox is not None and (steps_dir(st) / "started").exists())
    stopped = await iter_cli(cli_env, workspace, "stop", inp.name)
    assert stopped.returncode == 0, stopped.stderr
    state = await asyncio.wait_for(handle.result(), 30)
    assert state.status == "stopped" and state.iteration == 1
    assert [t.status for t in state.tasks] == ["completed", "remaining", "remaining"]
    late = await iter_cli(cli_env, workspace, "stop", inp.name)
    assert late.returncode == 1 and "is not running" in late.stderr


async def test_custom_template_and_extra_instructions(
    settings: Settings, workspace: Path, fake: FakeModel, worker: None, cli_env: dict[str, str]
) -> None:
    s.reviewers_pass(fake)
    s.write_spec(workspace, "# One\n- [ ] only\n")
    fake.script("session_plan", s.append_plan("a.txt", "one\n", action="create", session_complete=True))
    gen = await iter_cli(cli_env, workspace, "gen-template", "-o", "my.tmpl")
    assert gen.returncode == 0, gen.stderr
    assert "{{tasks}}" in (workspace / "my.tmpl").read_text()
    again = await iter_cli(cli_env, workspace, "gen-template", "-o", "my.tmpl")
    assert again.returncode == 1 and "--force" in again.stderr
    (workspace / "my.tmpl").write_text("CUSTOM {{session}} #{{iteration}}\n{{tasks}}\nEXTRA: {{extra}}\n")
    built = await iter_cli(
        cli_env,
        workspace,
        "build",
        "--headless",
        "--quiet",
        "--template",
        "my.tmpl",
        "-e",
        "Keep it short",
        "-n",
        "tpl",
    )
    assert built.returncode == 0, built.stderr
    prompt: Any = fake.calls("session_plan")[0]["messages"][1]["content"]
    assert prompt.startswith("CUSTOM tpl #1\nNext task: #1 [remaining] P2 only") and "EXTRA: Keep it short" in prompt
    missing = await iter_cli(cli_env, workspace, "build", "--headless", "--spec", "specs/none.md")
    assert missing.returncode == 1 and missing.stderr.strip().startswith("error: no spec at specs/none.md")


def run_on_a_terminal(args: list[str], env: dict[str, str], cwd: Path, answers: str) -> tuple[int, str]:
    """Runs the CLI with a pseudo-terminal as stdin and stdout, typing ``answers``."""
    import os
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    os.write(master, answers.encode())
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the terminal closed: the process is gone
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(60), b"".join(chunks).decode(errors="replace")


async def test_build_on_a_terminal_asks_for_what_it_needs(
    settings: Settings, workspace: Path, fake: FakeModel, worker: None, cli_env: dict[str, str]
) -> None:
    s.reviewers_pass(fake)
    s.write_spec(workspace, "# One\n- [ ] asked for\n- [ ] later\n", "specs/asked.md")
    fake.script("session_plan", s.append_plan("a.txt", "one\n", action="create"))
    code, out = await asyncio.to_thread(
        run_on_a_terminal, [ITER, "build", "--quiet"], cli_env, workspace, "specs/asked.md\n\nwizard\n1\n"
    )
    assert code == 0, out
    assert "Spec file [specs/SPEC.md]:" in out and "Model [coder]:" in out and "Session name [asked]:" in out
    assert "Session wizard limit after 1 iteration(s): 1/2 tasks completed" in out
    code, out = await asyncio.to_thread(run_on_a_terminal, [ITER, "build", "--headless"], cli_env, workspace, "")
    assert code == 1 and "Spec file" not in out and "no spec at specs/SPEC.md" in out  # headless never asks
