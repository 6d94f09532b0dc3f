"""What every command that talks to Temporal needs: settings, a client, a worker polling."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cli.output import err_console, fail

if TYPE_CHECKING:
    from temporalio.client import Client

    from models.config import Settings

T = TypeVar("T")
POLLER_FRESH_S = 75  # a live worker long-polls at least once a minute
WORKER_IDLE_EXIT_S = 600
WORKER_START_TIMEOUT_S = 30
WORKER_STOP_TIMEOUT_S = 30  # a graceful stop hands running activities back within 10 s (worker.py)


def settings(**overrides: Any) -> Settings:
    from models.config import ConfigError, load_settings

    try:
        return load_settings(overrides=overrides)
    except ConfigError as exc:
        fail(str(exc))


def run(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coro)


def say(message: str) -> None:
    err_console.print(f"[dim]{message}[/dim]")


async def client_for(cfg: Settings, start_server: bool = True) -> Client:
    from temporal.client import connect, ensure_search_attributes

    try:
        client = await connect(cfg, start_server=start_server, say=say)
        if start_server:
            await ensure_search_attributes(client)
        return client
    except RuntimeError as exc:  # TemporalUnavailable, DevServerError, missing tracing packages
        fail(str(exc))


async def worker_polling(client: Client, cfg: Settings, gone: str = "", pid: int = 0) -> bool:
    """A live worker polls each queue a request needs: workflows, model calls, execution. Polls
    by the worker ``gone`` (an identity) do not count, it has left since; with ``pid``, only that
    worker's polls count (this host's worker ``pid``)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    from models.queues import ROLES, queue_name

    now = time.time()
    needed = [(queue_name(cfg.temporal.task_queue, "workflows"), TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)]
    needed += [(queue_name(cfg.temporal.task_queue, role), TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY) for role in ROLES]
    for name, kind in needed:
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(namespace=client.namespace, task_queue=TaskQueue(name=name), task_queue_type=kind)
        )
        pollers = [p for p in resp.pollers if p.last_access_time.ToSeconds() > now - POLLER_FRESH_S]
        if not any(p.identity != gone and (not pid or p.identity == _identity(pid)) for p in pollers):
            return False
    return True


def _identity(pid: int) -> str:
    """How a worker process of this host shows among a queue's pollers (the SDK's default)."""
    return f"{pid}@{socket.gethostname()}"


def worker_env(cfg: Settings) -> dict[str, str]:
    """The spawned worker's environment: this shell's, plus what this command resolved for the
    worker's own keys (flags and ./iter.yml included), since the worker runs elsewhere than here."""
    from models.config import ENV_KEYS, data_dir
    from models.ownership import owner
    from temporal.code_version import ROOT

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    # This CLI's iter found through PYTHONPATH (a checkout, not the installed one): that entry
    # alone goes along, so that the worker runs the same code; the rest could shadow iter.
    if any(p and Path(p).resolve() == ROOT for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)):
        env["PYTHONPATH"] = str(ROOT)
    for var, dotted in ENV_KEYS.items():
        if owner(dotted) == "worker":
            value: Any = cfg
            for part in dotted.split("."):
                value = getattr(value, part)
            if value not in ("", None):
                env[var] = str(value).lower() if isinstance(value, bool) else str(value)
    env["ITER_DATA_DIR"] = str(data_dir(cfg))
    return env


def spawn_worker(cfg: Settings) -> tuple[str, int]:
    """A worker in its own process, detached, that leaves after a while with nothing to do. It
    starts with ``python -P`` in the data directory: nothing in the user's directory (a project's
    own ``worker.py`` or ``models/``) can shadow iter's modules. Returns its log and its pid."""
    from models.config import data_dir

    folder = data_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "worker.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "worker", "--idle-exit", str(WORKER_IDLE_EXIT_S)],
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=worker_env(cfg),
            start_new_session=True,
        )
    (folder / "worker.pid").write_text(str(proc.pid))
    return str(log), proc.pid


def _is_worker(pid: int) -> bool:
    """``pid`` is alive and runs ``-m worker``: never signal a process that is not one."""
    from temporal.processes import argv_of

    return ("-m", "worker") in itertools.pairwise(argv_of(pid))


def _spawned_pid(folder: Path) -> int:
    """The pid a CLI recorded for the background worker it spawned; 0 when none."""
    from temporal.processes import pid_in

    return pid_in(folder / "worker.pid")


async def _stop(pid: int) -> bool:
    """SIGTERM, the graceful stop: a running step is left to the next worker, which adopts it
    (temporal/shutdown.py). True once it has left, False if it is still leaving."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + WORKER_STOP_TIMEOUT_S
    while _is_worker(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


async def ensure_worker(client: Client, cfg: Settings) -> None:
    """A worker polls this CLI's queues, on this CLI's code: the background worker an earlier
    command spawned is replaced when iter was upgraded since it started."""
    from models.config import data_dir
    from temporal.code_version import code_fingerprint, started_code

    folder = data_dir(cfg)
    spawned = _spawned_pid(folder)
    alive = bool(spawned) and _is_worker(spawned)
    # A spawned worker that has left (idle, or after an upgrade) shows among the pollers for a minute.
    gone = _identity(spawned) if spawned and not alive else ""
    if await worker_polling(client, cfg, gone=gone):
        if not alive:
            return  # another worker (`iter worker`, a deployed one) serves this CLI
        recorded = started_code(folder, spawned)
        if recorded == code_fingerprint():
            return
        # No record: spawned by an iter from before workers recorded their code, once it polls
        # (a worker records its code before it polls: one just spawned is left to start).
        if recorded is None and not await worker_polling(client, cfg, pid=spawned):
            return
        left = await _stop(spawned)
        log, pid = spawn_worker(cfg)
        say(
            f"The background worker ran older code (pid {spawned}"
            f"{'' if left else ', still leaving'}); started one on this code (log {log})"
        )
    else:
        log, pid = spawn_worker(cfg)
        say(f"Started a background worker (log {log}); `iter worker` runs one in the foreground")
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if await worker_polling(client, cfg, pid=pid):
            return
        await asyncio.sleep(0.3)
    fail(f"the background worker did not start polling in {WORKER_START_TIMEOUT_S} s; see {log}")
