"""The local backend: each command in its own session on this machine, in the workspace.

For machines without Docker, chosen explicitly (``--executor local``); it isolates processes,
not the file system or the network.

The journal stays out of the step's way: the worker opens the run directory's files itself and
hands them to the wrapper as file descriptors (``status`` as stdin, for the wrapper's pid and then
the exit status; ``out`` as stdout and stderr), and the command gets ``/dev/null`` as stdin. So no
path to the journal appears in the step's arguments, environment or files. (A step runs as the
worker's user here: one that goes looking through ``/proc`` for its parent's descriptors, or
through the worker's data directory, can still find it. Only the Docker backend keeps a step out
by construction.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from activities.executor.base import (
    WRAPPER_NAME,
    CommandOutcome,
    finish,
    make_private,
    read_json,
    read_sealed,
    recorded_outcome,
    write_sealed,
)
from temporal.shutdown import leaving_to_next_worker

# Only these variables reach a step: an allowlist, so no API key or token leaks into a command.
PASSED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "TMPDIR", "SHELL")
ADOPT_POLL_S = 0.1
POLL_FIRST_S = 0.001  # a fast step ends within milliseconds; back off from there
PID_GRACE_S = 1.0
STARTED = "started.json"  # sealed by the worker before the wrapper starts: the run's token
# The shell that runs a step: the command arrives as $1, never pasted into a shell line; $2 is the
# run's token, by which a later attempt recognises this process. It writes its pid, then the exit
# status, to its stdin (the journal's ``status`` file, opened for writing by the worker).
WRAPPER = 'echo $$ >&0; /bin/sh -c "$1" < /dev/null 2>&1; rc=$?; echo $rc >&0; exit $rc'


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


def read_status(run_dir: Path) -> tuple[int | None, int | None]:
    """The wrapper's pid and exit status, each None until written."""
    try:
        lines = (run_dir / "status").read_text().split("\n")
    except FileNotFoundError:
        return None, None
    done = [int(x) for x in lines[:-1] if x.strip().lstrip("-").isdigit()]  # complete lines only
    return (done[0] if done else None), (done[1] if len(done) > 1 else None)


def _alive(pid: int, token: str) -> bool:
    """True while the wrapper of this run still runs (and is not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return token.encode() in cmdline.split(b"\0") and status[0] != "Z"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class LocalExecutor:
    name = "local"

    def __init__(self, workspace: Path, journal: Path) -> None:
        self.workspace = workspace
        self.journal = journal  # this request's journal: every run dir of its steps is in it

    async def run(
        self, command: str, run_dir: Path, timeout_s: int, output_cap: int, *, network: bool = False
    ) -> CommandOutcome:
        # ``network`` changes nothing here: this backend has no network isolation at all, every step
        # reaches what the worker reaches. That is why it must be chosen explicitly.
        del network
        done = recorded_outcome(run_dir)
        if done:
            return done
        # Only a start this request's worker sealed counts: anything else in the directory was
        # planted (by an earlier step) and goes before the command starts.
        started = read_sealed(run_dir / STARTED)
        token = str(started["token"]) if started else ""
        pid = await self._started_pid(run_dir, token) if token else None
        if pid is None:
            return await self._start_and_wait(command, run_dir, timeout_s, output_cap)
        return await self._adopt(pid, token, run_dir, timeout_s, output_cap)

    async def _started_pid(self, run_dir: Path, token: str) -> int | None:
        """The pid of the wrapper an earlier attempt started (-1: it finished), None if it never ran."""
        deadline = time.monotonic() + PID_GRACE_S
        while True:
            pid, rc = read_status(run_dir)
            if rc is not None:
                return -1
            if pid is not None:
                return pid
            found = _find(token)
            if found:
                return found  # started, but has not written its pid yet
            if time.monotonic() > deadline:
                # No pid after the grace period: the earlier attempt died before the command started.
                return None
            await asyncio.sleep(0.05)

    async def _start_and_wait(self, command: str, run_dir: Path, timeout_s: int, output_cap: int) -> CommandOutcome:
        shutil.rmtree(run_dir, ignore_errors=True)
        make_private(run_dir)
        token = f"iter-run-{secrets.token_hex(8)}"
        write_sealed(run_dir / STARTED, {"token": token, "at": time.time()})
        started = time.monotonic()
        with (run_dir / "status").open("wb") as status, (run_dir / "out").open("wb") as out:
            # A plain Popen, not asyncio's: asyncio kills its children when the worker's loop closes,
            # and a worker that stops gracefully must leave its step running for the next one.
            proc = subprocess.Popen(
                ["/bin/sh", "-c", WRAPPER, WRAPPER_NAME, command, token],
                cwd=self.workspace,
                env=step_env(self.workspace),
                stdin=status,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        try:
            delay = POLL_FIRST_S
            while proc.poll() is None:
                if time.monotonic() - started > timeout_s:
                    _kill_group(proc.pid)
                    proc.wait()
                    return finish(run_dir, None, time.monotonic() - started, output_cap, timed_out=True)
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, ADOPT_POLL_S)
        except asyncio.CancelledError:
            # The workflow gave up on this step (cancel): the step's processes go with it. A worker
            # that is shutting down leaves it to the next worker, which adopts it.
            if not leaving_to_next_worker():
                _kill_group(proc.pid)
                proc.wait()
            raise
        # The worker's own child tells its exit status: nothing a step writes decides it.
        return finish(run_dir, proc.returncode, time.monotonic() - started, output_cap)

    async def _adopt(self, pid: int, token: str, run_dir: Path, timeout_s: int, output_cap: int) -> CommandOutcome:
        started_at = (run_dir / STARTED).stat().st_mtime
        try:
            while pid > 0 and _alive(pid, token) and read_status(run_dir)[1] is None:
                if time.time() - started_at > timeout_s:
                    _kill_group(pid)
                    return finish(run_dir, None, time.time() - started_at, output_cap, timed_out=True)
                await asyncio.sleep(ADOPT_POLL_S)
        except asyncio.CancelledError:
            if not leaving_to_next_worker():
                _kill_group(pid)
            raise
        # Interrupted when it died without an exit status.
        return finish(run_dir, read_status(run_dir)[1], time.time() - started_at, output_cap)

    async def close(self) -> None:
        """The request ended: whatever of its steps still runs (a step a dead worker left, one that
        outlived a cancel) is killed before its journal goes."""
        kill_running(self.journal)


def kill_running(journal: Path) -> list[int]:
    """Kill the process group of every wrapper of this journal that is still alive."""
    killed = []
    for started in journal.glob(f"*/{STARTED}"):
        # Read without the seal (the release has none): a forged token only names a process that
        # carries it in its arguments, which is then the forger's own.
        data = (read_json(started) or {}).get("data")
        token = str(data.get("token", "")) if isinstance(data, dict) else ""
        pid, rc = read_status(started.parent)
        pid = pid or _find(token)
        if token and pid and rc is None and _alive(pid, token):
            _kill_group(pid)
            killed.append(pid)
    return killed


def _find(token: str) -> int | None:
    """The wrapper carrying ``token`` in its arguments, if one runs."""
    if not token:
        return None
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and _alive(int(proc.name), token):
            return int(proc.name)
    return None
