"""The Docker backend, the default: one container per request, reused with ``exec`` for each step.

The container has the workspace bind-mounted read-write at the same path and nothing else
writable but a tmpfs ``/tmp``; no network; the workspace owner's uid:gid; no capabilities;
no-new-privileges; pids, memory and CPU limits. Its name and labels come from the request key, so a
retried activity on another worker finds it, and ``close()`` (the ``release_executor`` activity) or
the sweep at worker start removes it.

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
import hashlib
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import Mount

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
from models.config import ExecutorSettings
from temporal.shutdown import leaving_to_next_worker

LABEL_REQUEST = "iter.request"
LABEL_WORKSPACE = "iter.workspace"
LABEL_MANAGED = "iter.executor"
LABEL_STEP = "iter.step"  # only on a network step's own container: the step's run key
API_TIMEOUT_S = 60
TMPFS_MB = 512
# PID 1 of every container: a shell that reaps orphans (so zombies never eat the pids limit) and
# restarts its idle child, so killing every step process with ``kill -1`` never stops the container.
IDLE_INIT = 'trap "exit 0" TERM; while :; do sleep 2147483647 & wait $!; done'
# Kill the step's process group, then anything else the step's user left behind (daemonised
# children escape the group); PID 1 is exempt from ``kill -1``. ``kill -1`` only runs when PID 1 is
# our own init, that is in the container's own PID namespace: never in one shared with the host.
# dash's kill takes no ``--``.
KILL_STEP = (
    '[ "$1" -gt 1 ] && kill -KILL -"$1" 2>/dev/null; '
    "case \"$(tr '\\0' ' ' < /proc/1/cmdline)\" in *'sleep 2147483647'*) kill -KILL -1 2>/dev/null;; esac; "
    "exit 0"
)
# What a step sees: no variable of the worker's environment crosses into the container.
CONTAINER_ENV = {
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ITER_STEP": "1",
}
POLL_FIRST_S = 0.001  # a fast step's rc appears within milliseconds; back off from there
POLL_MAX_S = 0.1
LIVENESS_EVERY_S = 0.5
KILL_WAIT_S = 10.0
EXEC_FILE = "exec"
# The shell that runs a step: the command arrives as $1 (never pasted into a shell line), $2 is the
# step's stream directory. Its exit status is the exec's, which the daemon records; ``pid`` (for a
# kill) and ``rc`` (a hint that it ended) are conveniences a step could overwrite, never records.
WRAPPER = 'echo $$ > "$2/pid"; /bin/sh -c "$1" > "$2/out" 2>&1 < /dev/null; rc=$?; echo $rc > "$2/rc"; exit $rc'
NAME_MAX = 120

_client: docker.DockerClient | None = None
_client_lock = threading.Lock()


def unreachable_message(why: object) -> str:
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    reason = "nothing answers there" if _no_answer(why) else str(why).splitlines()[0][:120]
    return (
        f"Docker is not reachable at {where} ({reason}); start it (`sudo systemctl start docker` or `dockerd &`) "
        "or install it, or choose the local backend explicitly with --executor local"
    )


def _no_answer(why: object) -> bool:
    text = str(why)
    return any(s in text for s in ("FileNotFoundError", "Connection refused", "Connection aborted", "No such file"))


def docker_client() -> docker.DockerClient:
    """One client per process (its connection pool makes each exec cheaper); built on first use,
    which asks the daemon its API version and so fails here, in one line, when none answers."""
    global _client
    with _client_lock:
        if _client is None:
            try:
                _client = docker.from_env(timeout=API_TIMEOUT_S)
            except DockerException as exc:
                raise ExecutorUnavailable(unreachable_message(exc), waiting=True) from None
        return _client


def preflight(settings: ExecutorSettings) -> None:
    """Fail fast, before a request starts, when its steps could not run: no daemon or no image."""
    client = docker_client()
    try:
        client.ping()
        client.images.get(settings.image)
    except ImageNotFound:
        raise ExecutorUnavailable(missing_image_message(settings.image)) from None
    except (DockerException, requests.exceptions.ConnectionError) as exc:
        raise ExecutorUnavailable(unreachable_message(exc), waiting=True) from None


def missing_image_message(image: str) -> str:
    return f"the executor image {image} does not exist; build it with `iter executor build`, or choose --executor local"


def missing_network_message(network: str) -> str:
    return (
        f"the executor network {network!r} does not exist on this Docker engine; create it "
        f"(`docker network create {network}`) or set executor.network (ITER_EXECUTOR_NETWORK) to one that does"
    )


def container_name(request_key: str) -> str:
    """Deterministic, valid for Docker, unique per key even when the readable part is cut."""
    readable = re.sub(r"[^a-zA-Z0-9_.-]", "-", request_key)[:NAME_MAX]
    digest = hashlib.sha256(request_key.encode()).hexdigest()[:10]
    return f"iter-{readable}-{digest}"


def workspace_owner(workspace: Path) -> tuple[int, int]:
    st = workspace.stat()
    return st.st_uid, st.st_gid


def step_container_name(request_key: str, network_step: str | None) -> str:
    """The request's container, or a network step's own (``/`` is in no run id nor run key)."""
    return container_name(request_key if network_step is None else f"{request_key}/{network_step}")


def workspace_mounts(workspace: Path, target: str, streams: Path) -> list[Mount]:
    """The workspace read-write, but iter's own files in it (policy, hooks, the project) read-only:
    a step cannot rewrite the rules that judge the next one. Besides, only the request's stream
    directory is writable, for its wrappers' output; its journal is mounted nowhere."""
    source = workspace.resolve()
    owner = workspace_owner(workspace)
    for folder in (source / ".iter", streams):
        if not folder.is_dir():
            folder.mkdir(parents=True)
            if os.geteuid() == 0 and owner != (0, 0):
                os.chown(folder, *owner)
    return [
        Mount(target=target, source=str(source), type="bind", read_only=False),
        Mount(target=f"{target}/.iter", source=str(source / ".iter"), type="bind", read_only=True),
        *git_mounts(source, target),
        Mount(target=str(streams), source=str(streams), type="bind", read_only=False),
    ]


def git_mounts(source: Path, target: str) -> list[Mount]:
    """The repository's git directory read-only: a step can read history, but never write a hook,
    a config (``core.fsmonitor``), a ref or the index that iter's own git commands on the host use.
    A worktree's ``.git`` is a file naming its admin folder inside the repository's git directory:
    that file is read-only too, and the git directory appears at its own path, read-only."""
    dot = source / ".git"
    if dot.is_dir() and not dot.is_symlink():
        return [Mount(target=f"{target}/.git", source=str(dot), type="bind", read_only=True)]
    if not dot.is_file() or dot.is_symlink():
        return []
    mounts = [Mount(target=f"{target}/.git", source=str(dot), type="bind", read_only=True)]
    common = common_git_dir(dot)
    if common is not None:
        mounts.append(Mount(target=str(common), source=str(common), type="bind", read_only=True))
    return mounts


def common_git_dir(dot_git_file: Path) -> Path | None:
    """The repository's git directory, from a worktree's ``.git`` file (``gitdir: <admin>``, whose
    ``commondir`` names the shared git directory)."""
    text = dot_git_file.read_text(errors="replace").strip()
    if not text.startswith("gitdir:"):
        return None
    admin = (dot_git_file.parent / text[len("gitdir:") :].strip()).resolve()
    try:
        common = (admin / (admin / "commondir").read_text().strip()).resolve()
    except OSError:
        return admin
    return common if common.is_dir() else None


def container_spec(
    settings: ExecutorSettings, workspace: Path, request_key: str, streams: Path, network_step: str | None = None
) -> dict[str, Any]:
    """The arguments of ``containers.create`` for a request: every isolation property in one place,
    shared by the executor and ``iter executor check``. With ``network_step`` (a run key), the same
    container for that one step, on ``settings.network``."""
    target = str(workspace.absolute())
    uid, gid = workspace_owner(workspace)
    memory = f"{settings.memory_mb}m"
    labels = {LABEL_MANAGED: "1", LABEL_REQUEST: request_key, LABEL_WORKSPACE: target}
    if network_step is not None:
        labels[LABEL_STEP] = network_step
    return {
        "image": settings.image,
        "name": step_container_name(request_key, network_step),
        "entrypoint": ["/bin/sh", "-c"],
        "command": [IDLE_INIT],
        "labels": labels,
        "user": f"{uid}:{gid}",
        "working_dir": target,
        "environment": CONTAINER_ENV,
        "mounts": workspace_mounts(workspace, target, streams),
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={TMPFS_MB}m,mode=1777"},
        "network_mode": "none" if network_step is None else settings.network,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": settings.pids_limit,
        "mem_limit": memory,
        "memswap_limit": memory,  # no swap: the memory limit is the limit
        "nano_cpus": int(settings.cpus * 1e9),
        "hostname": "iter-step",
        "ipc_mode": "private",
        "detach": True,
    }


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
        self.settings = settings
        self.workspace = workspace
        self.request_key = request_key
        self.data = data
        self.journal = runs_root(data, request_key)
        self.streams = streams_root(data, request_key)
        self.network_step = network_step
        self.container_name = step_container_name(request_key, network_step)
        self.client = docker_client()
        self.api = self.client.api
        self._container_id: str | None = None

    # --- the step --------------------------------------------------------------------------------

    async def run(
        self, command: str, run_dir: Path, timeout_s: int, output_cap: int, *, network: bool = False
    ) -> CommandOutcome:
        if network and self.network_step is None:
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
        step = DockerExecutor(self.settings, self.workspace, self.request_key, self.data, network_step=run_dir.name)
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
        # The step runs as the workspace owner and its wrapper writes here; a worker running as
        # root (CI) hands the directory over so that it can.
        owner = workspace_owner(self.workspace)
        if os.geteuid() == 0 and owner != (0, 0):
            os.chown(stream, *owner)

    def _stream(self, run_dir: Path) -> Path:
        return self.streams / run_dir.name

    def _start(self, run_dir: Path, command: str) -> str:
        cid = self._ensure_container()
        # runc starts every exec'd process as a session (so group) leader: the wrapper's pid is the
        # step's process group, which a timeout kills. (A ``setsid`` here would only fork.)
        argv = ["/bin/sh", "-c", WRAPPER, WRAPPER_NAME, command, str(self._stream(run_dir))]
        try:
            exec_id = self._exec_create(cid, argv)
        except (NotFound, APIError) as exc:
            if not _container_gone(exc):
                raise
            # Removed or stopped between steps (a sweep, a daemon restart): a new one, same name.
            self._container_id = None
            exec_id = self._exec_create(self._ensure_container(), argv)
        # Recorded before it starts: a retried attempt that finds this id asks Docker whether the
        # step is running; one that finds none knows the step never started.
        (run_dir / EXEC_FILE).write_text(exec_id)
        self.api.exec_start(exec_id, detach=True)
        return exec_id

    def _exec_create(self, cid: str, argv: list[str]) -> str:
        # Who owns the workspace is read when needed, not when built: releasing a request whose
        # workspace is gone must still work.
        uid, gid = workspace_owner(self.workspace)
        created = self.api.exec_create(
            cid, argv, stdout=False, stderr=False, user=f"{uid}:{gid}", workdir=str(self.workspace.absolute())
        )
        return str(created["Id"])

    def _probe(self, run_dir: Path) -> tuple[str | None, bool]:
        """For a run an earlier attempt prepared: its exec id, and whether its command started
        (the daemon says: running, or ended with a status, or gone with its container)."""
        try:
            exec_id = (run_dir / EXEC_FILE).read_text().strip()
        except FileNotFoundError:
            return None, False  # it died before creating the exec: nothing ran
        info = self._exec_info(exec_id)
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
                    ended, code = await self._call(self._ended, exec_id)
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

    def _ended(self, exec_id: str | None) -> tuple[bool, int | None]:
        """Whether the exec has ended, and its exit status as the daemon recorded it."""
        if exec_id is None:
            return True, None
        info = self._exec_info(exec_id)
        if info is None:
            return True, None
        if info.get("Running"):
            return False, None
        code = info.get("ExitCode")
        return True, int(code) if code is not None else None

    def _running(self, exec_id: str | None) -> bool:
        if exec_id is None:
            return False
        info = self._exec_info(exec_id)
        return bool(info and info.get("Running"))

    def _exec_info(self, exec_id: str) -> dict[str, Any] | None:
        try:
            info: dict[str, Any] = self.api.exec_inspect(exec_id)
            return info
        except NotFound:
            return None  # the container (and every exec in it) is gone

    def _kill(self, run_dir: Path) -> None:
        try:
            # Written by the wrapper, so only a hint: ``kill -1`` takes everything of the step anyway.
            pgid = int((self._stream(run_dir) / "pid").read_text())
        except (FileNotFoundError, ValueError):
            pgid = 0  # no group yet: ``kill -1`` still takes everything the step started
        try:
            exec_id = self._exec_create(self._container_ref(), ["/bin/sh", "-c", KILL_STEP, "iter-kill", str(pgid)])
            self.api.exec_start(exec_id)
            # With no stream attached, exec_start returns once the kill has *started*; wait until it
            # is done, or its ``kill -1`` could hit the next step's exec as it enters the container.
            deadline = time.monotonic() + KILL_WAIT_S
            while self._running(exec_id) and time.monotonic() < deadline:
                time.sleep(POLL_FIRST_S)
        except (NotFound, APIError) as exc:
            if not _container_gone(exc):
                raise

    # --- the container ---------------------------------------------------------------------------

    def _container_ref(self) -> str:
        return self._container_id or self.container_name

    def _ensure_container(self) -> str:
        if self._container_id:
            return self._container_id
        try:
            container = self.client.containers.get(self.container_name)
        except NotFound:
            container = self._create()
        if container.status != "running":
            try:
                container.start()
            except NotFound as exc:
                # Docker checks the network only now: a name that is not one of its networks.
                if self.network_step is None or "network" not in str(exc):
                    raise
                with contextlib.suppress(NotFound):
                    container.remove(force=True)
                raise ExecutorUnavailable(missing_network_message(self.settings.network)) from None
        self._container_id = str(container.id)
        return self._container_id

    def _create(self) -> Any:
        spec = container_spec(self.settings, self.workspace, self.request_key, self.streams, self.network_step)
        try:
            return self.client.containers.create(**spec)
        except ImageNotFound:
            raise ExecutorUnavailable(missing_image_message(self.settings.image)) from None
        except APIError as exc:
            if exc.status_code != 409:
                raise
            # Another attempt created it a moment ago: use that one.
            return self.client.containers.get(self.container_name)

    async def close(self) -> None:
        await self._call(self._remove)

    def _remove(self) -> None:
        names = [self.container_name]
        if self.network_step is None:
            # Network steps' containers a dead worker left behind go with the request.
            filters = {"label": [f"{LABEL_REQUEST}={self.request_key}", LABEL_STEP]}
            names += [c.name for c in self.client.containers.list(all=True, filters=filters)]
        for name in names:
            with contextlib.suppress(NotFound):
                self.client.api.remove_container(name, force=True)
        self._container_id = None

    # --- plumbing --------------------------------------------------------------------------------

    async def _call(self, fn: Any, *args: Any) -> Any:
        """A blocking SDK call on a thread; a daemon that went away says so in one line."""
        try:
            return await asyncio.to_thread(fn, *args)
        except requests.exceptions.ConnectionError as exc:
            raise ExecutorUnavailable(unreachable_message(exc), waiting=True) from None


def _container_gone(exc: DockerException) -> bool:
    """Docker's answer when the container was removed (404) or is not running (409)."""
    return isinstance(exc, NotFound) or (isinstance(exc, APIError) and exc.status_code == 409)
