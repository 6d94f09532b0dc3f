"""Hooks from .iter/hooks.yml: every point runs, with and without pipe_output; variables stay one
shell word each; a failing or hanging hook is reported and never stops the session."""

from __future__ import annotations

import asyncio
import os
import shlex
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.hooks import load, render_command, run_hooks
from models.config import Settings
from models.session import Hook, HooksConfig
from models.session_io import RunHooksInput
from tests import replies as r
from tests import session_replies as s
from tests.fake_llm import FakeModel

DANGER = "x; rm -rf ~"


def hooks_file(workspace: Path, text: str) -> None:
    (workspace / ".iter").mkdir(exist_ok=True)
    (workspace / ".iter" / "hooks.yml").write_text(text)


def test_variables_become_single_quoted_words() -> None:
    cmd = render_command(
        "printf '%s|' {{task_content}} {{ iteration }} {{unknown}}", {"task_content": DANGER, "iteration": "3"}
    )
    assert cmd == "printf '%s|' 'x; rm -rf ~' 3 {{unknown}}"
    assert render_command("echo {{error}}", {}) == "echo ''"  # a known variable without a value is empty


async def test_dangerous_value_stays_a_string(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / "keep").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))  # should quoting ever fail, only this folder is at risk
    config = HooksConfig(hooks={"on_task_complete": [Hook(command="printf '%s' {{task_content}}", pipe_output=True)]})
    out = await run_hooks(RunHooksInput(workspace=str(tmp_path), point="on_task_complete", hooks=config,
                                        variables={"task_content": DANGER}))  # fmt: skip
    assert out.reports[0].output == DANGER and out.reports[0].exit_code == 0
    assert (home / "keep").is_dir()


async def test_hanging_hook_is_killed_with_its_process_group_and_the_next_hook_runs(tmp_path: Path) -> None:
    config = HooksConfig(
        hooks={
            "post_iteration": [
                Hook(command="sleep 60 & echo $! > bg.pid; sleep 60", timeout=0.5),
                Hook(command="echo failing; exit 3", pipe_output=True),
                Hook(command="echo quiet"),
            ]
        }
    )
    out = await run_hooks(RunHooksInput(workspace=str(tmp_path), point="post_iteration", hooks=config))
    hung, failed, quiet = out.reports
    assert hung.timed_out and hung.exit_code is None and hung.duration_s < 5
    assert failed.exit_code == 3 and not failed.ok and quiet.ok
    assert out.piped == "[hook post_iteration] $ echo failing; exit 3 (exit 3)\nfailing"  # only pipe_output hooks
    pid = int((tmp_path / "bg.pid").read_text())
    for _ in range(50):  # the background child of the hook died with its group
        if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"process {pid} outlived its hook")


def test_hooks_file_errors_are_reported_not_raised(tmp_path: Path) -> None:
    assert load(tmp_path).config.hooks == {} and load(tmp_path).error == ""
    hooks_file(tmp_path, "hooks: [unclosed")
    assert "not valid YAML" in load(tmp_path).error
    hooks_file(tmp_path, "version: 1\nhooks:\n  on_lunch:\n    - command: echo\n")
    assert "hooks.on_lunch" in load(tmp_path).error


HOOKS = """version: 1
hooks:
  session_start:
    - command: "echo start {{session}} >> LOG"
    - command: "echo PIPED-START"
      pipe_output: true
  pre_iteration:
    - command: "echo pre {{iteration}} >> LOG"
    - command: "echo PIPED-PRE-{{iteration}}"
      pipe_output: true
  post_iteration:
    - command: "echo post {{iteration}} >> LOG"
    - command: "echo PIPED-POST-{{iteration}}"
      pipe_output: true
  on_task_complete:
    - command: "printf 'done %s %s\\\\n' {{task_id}} {{task_content}} >> LOG"
    - command: "echo PIPED-DONE-{{task_id}}"
      pipe_output: true
  on_error:
    - command: "printf 'error %s %s\\\\n' {{iteration}} {{error}} >> LOG"
    - command: "echo PIPED-ERROR-{{iteration}}"
      pipe_output: true
  session_end:
    - command: "echo end {{session}} >> LOG"
    - command: "echo PIPED-END"
      pipe_output: true
    - command: "sleep 30"
      timeout: 1
"""


async def test_every_hook_point_runs_and_piped_output_reaches_the_next_prompt(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    home = tmp_path / "home"
    (home / "keep").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    log = tmp_path / "hooks.log"
    hooks_file(workspace, HOOKS.replace("LOG", shlex.quote(str(log))))
    spec = s.write_spec(workspace, f"# Hooks\n- [ ] {DANGER}\n- [ ] second\n")
    fake.default("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass(), r.post_fail(), r.post_pass())
    fake.script(
        "session_plan",
        s.append_plan("a.txt", "one\n", action="create"),
        s.append_plan("a.txt", "two\n"),
        s.append_plan("a.txt", "three\n", session_complete=True),
    )
    inp = s.session_input(settings, workspace, spec, auto_commit=False)
    state = await s.run_session(client, settings, inp)
    assert state.status == "completed", state.events[-5:]
    lines = log.read_text().splitlines()
    assert lines[0] == f"start {state.name}" and lines[-1] == f"end {state.name}"
    assert lines[1:-1] == [
        "pre 1", f"done 1 {DANGER}", "post 1",
        "pre 2", f"error 2 {lines[5][len('error 2 '):]}", "post 2",
        "pre 3", "done 2 second", "post 3",
    ]  # fmt: skip
    assert "verification FAIL" in lines[5]
    assert (home / "keep").is_dir()
    prompts = [c["messages"][1]["content"] for c in fake.calls("session_plan")]
    assert prompts[0].startswith("Output of the pre_iteration hooks:\n[hook pre_iteration] $ echo PIPED-PRE-1")
    assert "PIPED-START" in prompts[0] and "PIPED-START" not in prompts[1]
    assert all(x in prompts[1] for x in ("PIPED-DONE-1", "PIPED-POST-1", "PIPED-PRE-2"))
    assert all(x in prompts[2] for x in ("PIPED-ERROR-2", "PIPED-POST-2", "PIPED-PRE-3"))
    assert not any("PIPED-DONE-1" in p for p in prompts[2:])  # delivered once
    assert not any(f"start {state.name}" in p or "pre 1" in p for p in prompts)  # not piped: never sent
    timed_out = [h for h in state.hook_reports if h.timed_out]
    assert [h.command for h in timed_out] == ["sleep 30"] and timed_out[0].point == "session_end"
    assert any("session_end hook failed (timed out)" in e.message for e in state.events)


def test_hook_runs_in_the_workspace(tmp_path: Path) -> None:
    out = asyncio.run(
        run_hooks(RunHooksInput(workspace=str(tmp_path), point="pre_iteration",
                                hooks=HooksConfig(hooks={"pre_iteration": [Hook(command="pwd", pipe_output=True)]})))
    )  # fmt: skip
    assert out.reports[0].output.strip() == os.path.realpath(tmp_path)
