"""The Docker backend, the default: one container per request, reused with ``exec`` for each step.

What the container is, and so what a step cannot do, is ``container_spec``; the container itself,
made on first use and removed by ``close()`` (the ``release_executor`` activity) or the sweep at
worker start, is ``container.Container``. This module runs a step in it, exactly once.

A step the safety review approved for network access runs in a container of its own, made for that
step only: the same spec but on the network ``executor.network``, named after the request key and
the step's run key (so a retried attempt finds it), labelled ``iter.step``, removed when the step
ends. The request's container never gets a network.

Exactly once, and out of a step's reach: the journal (``cmd.sh``, the exec id, recorded before the
exec starts, and ``outcome.json``) lives on the worker's machine and no container mounts it. The
exit status is the Docker daemon's record of the exec; the wrapper's own ``rc`` file, in the
request's stream directory (the one directory its container may write besides the workspace), is
only a hint to look now. A retried attempt reads the journal and the exec's state and adopts a step
still running instead of starting it again. A step can write nothing any record is read from: its
output is its own, and a later step's wrapper truncates its output file as it starts.

The Docker SDK blocks, so every call goes through ``asyncio.to_thread``: the worker's event loop,
which heartbeats, never waits on the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

import requests
from docker.errors import DockerException

from activities.executor.base import (
    WRAPPER_NAME,
    CommandOutcome,
    ExecutorUnavailable,
    finish,
    make_private,
    recorded_outcome,
    runs_root,
    streams_root,
)
from activities.executor.container import Container
from activities.executor.container_spec import hand_over
from activities.executor.docker_client import unreachable_message
from models.config import ExecutorSettings
from temporal.shutdown import leaving_to_next_worker

POLL_FIRST_S = 0.001  # a fast step's rc appears within milliseconds; back off from there
POLL_MAX_S = 0.1
LIVENESS_EVERY_S = 0.5
EXEC_FILE = "exec"
# The shell that runs a step: the command arrives as $1 (never pasted into a shell line), $2 is the
# step's stream directory. Its exit status is the exec's, which the daemon records; ``pid`` (for a
# kill) and ``rc`` (a hint that it ended) are conveniences a step could overwrite, never records.
WRAPPER = 'echo $$ > "$2/pid"; /bin/sh -c "$1" > "$2/out" 2>&1 < /dev/null; rc=$?; echo $rc > "$2/rc"; exit $rc'


class DockerExecutor:
    name = "docker"

    def __init__(
        self,
        settings: ExecutorSettings,
        workspace: Path,
        request_key: str,
        data: Path,
        network_step: str | None = None,
    ) -> None:
        self.data = data
        self.journal = runs_root(data, request_key)
        self.streams = streams_root(data, request_key)
        # The container holds what a step runs with: settings, workspace, request and network step.
        self.container = Container(settings, workspace, request_key, self.streams, network_step)

    @property
    def request_key(self) -> str:
        return self.container.request_key

    @property
    def settings(self) -> ExecutorSettings:
        return self.container.settings

    # --- the step --------------------------------------------------------------------------------

    async def run(
        self, command: str, run_dir: Path, timeout_s: int, output_cap: int, *, network: bool = False
    ) -> CommandOutcome:
        if network and self.container.network_step is None:
            return await self._run_networked(command, run_dir, timeout_s, output_cap)
        done = recorded_outcome(run_dir)
        if done:
            return done
        if (run_dir / "cmd.sh").exists():
            exec_id, started = await self._call(self._probe, run_dir)
            if started:
                return await self._wait(run_dir, exec_id, self._started_at(run_dir), timeout_s, output_cap)
        self._prepare(run_dir, command)
        starting = asyncio.ensure_future(self._call(self._start, run_dir, command))
        try:
            exec_id = await asyncio.shield(starting)
        except asyncio.CancelledError:
            # Cancelled while the step was being started: the start goes on in its thread, so let
            # it finish, then stop what it started (unless the worker leaves it to the next one).
            await starting
            if not leaving_to_next_worker():
                await asyncio.shield(self._call(self._kill, run_dir))
            raise
        return await self._wait(run_dir, exec_id, time.time(), timeout_s, output_cap)

    async def _run_networked(self, command: str, run_dir: Path, timeout_s: int, output_cap: int) -> CommandOutcome:
        """The step in a container of its own on ``executor.network``, through the same journal: a
        retried attempt makes the same executor (same name), so it adopts a step that started."""
        box = self.container
        step = DockerExecutor(box.settings, box.workspace, box.request_key, self.data, network_step=run_dir.name)
        try:
            return await step.run(command, run_dir, timeout_s, output_cap)
        finally:
            # Gone when the step ends, however it ends; a worker that dies first leaves it to the
            # retried attempt (which ends here too), to the request's release, or to the sweep,
            # as does a failed removal, which must not hide the step's own outcome.
            if not leaving_to_next_worker():
                with contextlib.suppress(ExecutorUnavailable, DockerException):
                    await asyncio.shield(step.close())

    def _prepare(self, run_dir: Path, command: str) -> None:
        if run_dir.parent != self.journal:
            # A run dir anywhere else might be one a step can write (the workspace).
            raise ValueError(f"run dir {run_dir} is not in the request's journal {self.journal}")
        make_private(run_dir)
        (run_dir / "cmd.sh").write_text(command + "\n")
        (run_dir / EXEC_FILE).unlink(missing_ok=True)
        stream = self._stream(run_dir)
        shutil.rmtree(stream, ignore_errors=True)  # whatever an earlier step left there
        stream.mkdir(parents=True)
        hand_over(stream, self.container.workspace)  # the step's wrapper, run as the workspace owner, writes here

    def _stream(self, run_dir: Path) -> Path:
        return self.streams / run_dir.name

    def _start(self, run_dir: Path, command: str) -> str:
        # runc starts every exec'd process as a session (so group) leader: the wrapper's pid is the
        # step's process group, which a timeout kills. (A ``setsid`` here would only fork.)
        argv = ["/bin/sh", "-c", WRAPPER, WRAPPER_NAME, command, str(self._stream(run_dir))]
        exec_id = self.container.new_exec(argv)
        # Recorded before it starts: a retried attempt that finds this id asks Docker whether the
        # step is running; one that finds none knows the step never started.
        (run_dir / EXEC_FILE).write_text(exec_id)
        self.container.start_exec(exec_id)
        return exec_id

    def _probe(self, run_dir: Path) -> tuple[str | None, bool]:
        """For a run an earlier attempt prepared: its exec id, and whether its command started
        (the daemon says: running, or ended with a status, or gone with its container)."""
        try:
            exec_id = (run_dir / EXEC_FILE).read_text().strip()
        except FileNotFoundError:
            return None, False  # it died before creating the exec: nothing ran
        info = self.container.exec_info(exec_id)
        if info is None:
            return exec_id, True  # the container went, and the exec with it: report it lost
        return exec_id, bool(info.get("Running") or info.get("Pid") or info.get("ExitCode") is not None)

    @staticmethod
    def _started_at(run_dir: Path) -> float:
        for name in (EXEC_FILE, "cmd.sh"):
            with contextlib.suppress(FileNotFoundError):
                return (run_dir / name).stat().st_mtime
        return time.time()

    async def _wait(
        self, run_dir: Path, exec_id: str | None, started_at: float, timeout_s: int, output_cap: int
    ) -> CommandOutcome:
        delay = POLL_FIRST_S
        next_liveness = time.monotonic() + LIVENESS_EVERY_S
        hint = self._stream(run_dir) / "rc"
        output = self._stream(run_dir)
        try:
            while True:
                # The wrapper's rc file says "look now"; the daemon says what happened.
                if hint.exists() or time.monotonic() >= next_liveness:
                    next_liveness = time.monotonic() + LIVENESS_EVERY_S
                    ended, code = await self._call(self.container.ended, exec_id)
                    if ended:
                        took = time.time() - started_at
                        if code is None:
                            return self._lost(run_dir, output, started_at, output_cap)
                        return finish(run_dir, code, took, output_cap, output_dir=output)
                if time.time() - started_at > timeout_s:
                    await self._call(self._kill, run_dir)
                    took = time.time() - started_at
                    return finish(run_dir, None, took, output_cap, output_dir=output, timed_out=True)
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, POLL_MAX_S)
        except asyncio.CancelledError:
            # The workflow gave up on this step (cancel): the step's processes go with it. A worker
            # that is shutting down leaves it running for the next worker to adopt.
            if not leaving_to_next_worker():
                await asyncio.shield(self._call(self._kill, run_dir))
            raise

    @staticmethod
    def _lost(run_dir: Path, output: Path, started_at: float, output_cap: int) -> CommandOutcome:
        """The step's exec is gone without an exit status: its container went away with the host."""
        note = "\n[the step's container stopped or was removed while it ran; it has no exit status]"
        return finish(run_dir, None, time.time() - started_at, output_cap, output_dir=output, note=note)

    def _kill(self, run_dir: Path) -> None:
        try:
            # Written by the wrapper, so only a hint: ``kill -1`` takes everything of the step anyway.
            pgid = int((self._stream(run_dir) / "pid").read_text())
        except (FileNotFoundError, ValueError):
            pgid = 0  # no group yet: ``kill -1`` still takes everything the step started
        self.container.kill_step(pgid)

    async def close(self) -> None:
        await self._call(self.container.remove)

    # --- plumbing --------------------------------------------------------------------------------

    async def _call(self, fn: Any, *args: Any) -> Any:
        """A blocking SDK call on a thread; a daemon that went away says so in one line."""
        try:
            return await asyncio.to_thread(fn, *args)
        except requests.exceptions.ConnectionError as exc:
            raise ExecutorUnavailable(unreachable_message(exc), waiting=True) from None
