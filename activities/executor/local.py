"""The local backend: each command in its own session on this machine, in the workspace.

For machines without Docker, chosen explicitly (``--executor local``); it isolates processes,
not the file system or the network."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from activities.executor.base import (
    WRAPPER,
    WRAPPER_NAME,
    CommandOutcome,
    finish,
    read_rc,
    recorded_outcome,
)

# Only these variables reach a step: an allowlist, so no API key or token leaks into a command.
PASSED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "TMPDIR", "SHELL")
ADOPT_POLL_S = 0.1
PID_GRACE_S = 1.0


def _own_bin_dirs() -> set[str]:
    """iter's own virtualenv: its python must never answer a step's ``python`` (it lacks the
    project's packages, e.g. pytest)."""
    dirs = set()
    if sys.prefix != sys.base_prefix:
        dirs.add(os.path.realpath(os.path.join(sys.prefix, "bin")))
    if os.environ.get("VIRTUAL_ENV"):
        dirs.add(os.path.realpath(os.path.join(os.environ["VIRTUAL_ENV"], "bin")))
    return dirs


def step_env(workspace: Path | None = None) -> dict[str, str]:
    """The workspace's environment: the user's PATH without iter's virtualenv, and the
    workspace's own ``.venv`` first when it has one."""
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    own = _own_bin_dirs()
    path = [p for p in env.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep) if p]
    path = [p for p in path if os.path.realpath(p) not in own]
    if workspace is not None and (workspace / ".venv" / "bin").is_dir():
        path.insert(0, str(workspace / ".venv" / "bin"))
        env["VIRTUAL_ENV"] = str(workspace / ".venv")
    env["PATH"] = os.pathsep.join(path) or "/usr/local/bin:/usr/bin:/bin"
    env["ITER_STEP"] = "1"
    return env


def _alive(pid: int, run_dir: Path) -> bool:
    """True while the wrapper recorded in ``run_dir`` still runs (and is not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    return str(run_dir).encode() in cmdline and status[0] != "Z"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class LocalExecutor:
    name = "local"

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace

    async def run(
        self, command: str, run_dir: Path, timeout_s: int, output_cap: int, *, network: bool = False
    ) -> CommandOutcome:
        # ``network`` changes nothing here: this backend has no network isolation at all, every step
        # reaches what the worker reaches. That is why it must be chosen explicitly.
        del network
        done = recorded_outcome(run_dir)
        if done:
            return done
        pid = await self._started_pid(run_dir)
        if pid is None:
            return await self._start_and_wait(command, run_dir, timeout_s, output_cap)
        return await self._adopt(pid, run_dir, timeout_s, output_cap)

    async def _started_pid(self, run_dir: Path) -> int | None:
        """The pid of a wrapper an earlier attempt started, if it started one."""
        if not (run_dir / "cmd.sh").exists():
            return None
        deadline = time.monotonic() + PID_GRACE_S
        while True:
            try:
                return int((run_dir / "pid").read_text())
            except (FileNotFoundError, ValueError):
                if (run_dir / "rc").exists() or time.monotonic() > deadline:
                    # Finished before writing a pid cannot happen; no pid after the grace period
                    # means the earlier attempt died before the command started.
                    return -1 if (run_dir / "rc").exists() else None
                await asyncio.sleep(0.05)

    async def _start_and_wait(self, command: str, run_dir: Path, timeout_s: int, output_cap: int) -> CommandOutcome:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "cmd.sh").write_text(command + "\n")
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            WRAPPER,
            WRAPPER_NAME,
            str(run_dir / "cmd.sh"),
            str(run_dir),
            cwd=self.workspace,
            env=step_env(self.workspace),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            await asyncio.wait_for(proc.wait(), timeout=timeout_s)
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            return finish(run_dir, time.monotonic() - started, output_cap, timed_out=True)
        except asyncio.CancelledError:
            # The workflow gave up on this step (cancel): the step's processes go with it.
            _kill_group(proc.pid)
            raise
        return finish(run_dir, time.monotonic() - started, output_cap)

    async def _adopt(self, pid: int, run_dir: Path, timeout_s: int, output_cap: int) -> CommandOutcome:
        pid_file = run_dir / "pid"
        started_at = pid_file.stat().st_mtime if pid_file.exists() else time.time()
        while pid > 0 and _alive(pid, run_dir) and read_rc(run_dir) is None:
            if time.time() - started_at > timeout_s:
                _kill_group(pid)
                return finish(run_dir, time.time() - started_at, output_cap, timed_out=True)
            await asyncio.sleep(ADOPT_POLL_S)
        return finish(run_dir, time.time() - started_at, output_cap)  # interrupted if it died without rc

    async def close(self) -> None:
        return None
