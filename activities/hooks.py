"""Lifecycle hooks from ``.iter/hooks.yml`` (iteratr's format), run as activities.

Template variables are shell-quoted with ``shlex.quote``, so a task named ``x; rm -rf ~`` reaches
the hook as one harmless string. Each hook runs in its own process group and is killed whole when
its timeout passes. A failing, hanging or missing hook is reported, never raised: hooks must not
stop a session. A hook can run twice when its worker dies mid-hook (at least once, like any
activity that is retried), so hooks should be safe to repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import tempfile
import time
from pathlib import Path

import yaml
from pydantic import ValidationError
from temporalio import activity

from activities.heartbeat import heartbeating
from activities.redact import redact
from models.session import HookReport, HooksConfig
from models.session_io import LoadHooksOutput, RunHooksInput, RunHooksOutput

HOOKS_FILE = Path(".iter") / "hooks.yml"
VARIABLES = ("session", "iteration", "task_id", "task_content", "error")
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
OUTPUT_CAP = 16_000


def render_command(command: str, variables: dict[str, str]) -> str:
    """Every known variable becomes one shell word, whatever it holds; unknown ones stay as written."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in variables or name in VARIABLES:
            return shlex.quote(variables.get(name, ""))
        return match.group(0)

    return PLACEHOLDER.sub(sub, command)


def load(workspace: Path) -> LoadHooksOutput:
    path = workspace / HOOKS_FILE
    if not path.is_file():
        return LoadHooksOutput()
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return LoadHooksOutput(config=HooksConfig.model_validate(data), path=str(path))
    except yaml.YAMLError as exc:
        return LoadHooksOutput(
            path=str(path), error=f"{path}: not valid YAML ({exc.__class__.__name__}); hooks are off"
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top)"
        return LoadHooksOutput(path=str(path), error=f"{path}: {where}: {err['msg']}; hooks are off until it is fixed")


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_one(command: str, workspace: Path, timeout: float) -> tuple[int | None, bool, str, float]:
    """Exit code (None when killed), timed out, output (head and tail), seconds."""
    started = time.monotonic()
    # Output goes to a file, not a pipe: a hook that leaves a daemon holding the pipe cannot hang us.
    with tempfile.TemporaryFile() as out:
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            cwd=workspace,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), timeout=timeout)
        except TimeoutError:
            timed_out = True
            _kill_group(proc.pid)
            await proc.wait()
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            raise
        size = out.seek(0, os.SEEK_END)
        out.seek(0)
        if size <= OUTPUT_CAP:
            text = out.read().decode(errors="replace")
        else:
            head = out.read(OUTPUT_CAP // 2).decode(errors="replace")
            out.seek(size - OUTPUT_CAP // 2)
            text = head + f"\n[... {size - OUTPUT_CAP} bytes cut ...]\n" + out.read().decode(errors="replace")
    return (None if timed_out else proc.returncode), timed_out, redact(text), time.monotonic() - started


def piped_text(point: str, report: HookReport) -> str:
    status = (
        f"timed out after {report.duration_s:.0f} s"
        if report.timed_out
        else (report.error or f"exit {report.exit_code}")
    )
    return f"[hook {point}] $ {report.command} ({status})\n{report.output.rstrip()}"


@activity.defn
async def load_hooks(workspace: str) -> LoadHooksOutput:
    return load(Path(workspace))


@activity.defn
async def run_hooks(inp: RunHooksInput) -> RunHooksOutput:
    progress: dict[str, object] = {"point": inp.point, "hook": 0}
    out = RunHooksOutput()
    piped: list[str] = []
    async with heartbeating(progress):
        for n, hook in enumerate(inp.hooks.at(inp.point)):
            progress["hook"] = n
            command = render_command(hook.command, inp.variables)
            try:
                code, timed_out, text, seconds = await run_one(command, Path(inp.workspace), hook.timeout)
                report = HookReport(
                    point=inp.point,
                    command=command,
                    exit_code=code,
                    timed_out=timed_out,
                    output=text,
                    duration_s=round(seconds, 3),
                    iteration=inp.iteration,
                )
            except OSError as exc:
                report = HookReport(
                    point=inp.point, command=command, error=f"could not start: {exc}", iteration=inp.iteration
                )
            out.reports.append(report)
            if hook.pipe_output:
                piped.append(piped_text(inp.point, report))
    out.piped = "\n\n".join(piped)
    return out
