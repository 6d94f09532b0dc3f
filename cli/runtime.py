"""What every command that talks to Temporal needs: settings, a client, a worker polling."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from cli.output import err_console, fail

if TYPE_CHECKING:
    from temporalio.client import Client

    from models.config import Settings

T = TypeVar("T")
POLLER_FRESH_S = 75  # a live worker long-polls at least once a minute
WORKER_IDLE_EXIT_S = 600
WORKER_START_TIMEOUT_S = 30


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


async def worker_polling(client: Client, cfg: Settings) -> bool:
    """A live worker polls each queue a request needs: workflows, model calls, execution."""
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
        if not any(p.last_access_time.ToSeconds() > now - POLLER_FRESH_S for p in resp.pollers):
            return False
    return True


def worker_env(cfg: Settings) -> dict[str, str]:
    """The spawned worker's environment: this shell's, plus what this command resolved for the
    worker's own keys (flags and ./iter.yml included), since the worker runs elsewhere than here."""
    from models.config import ENV_KEYS, data_dir
    from models.ownership import owner

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    for var, dotted in ENV_KEYS.items():
        if owner(dotted) == "worker":
            value: Any = cfg
            for part in dotted.split("."):
                value = getattr(value, part)
            if value not in ("", None):
                env[var] = str(value).lower() if isinstance(value, bool) else str(value)
    env["ITER_DATA_DIR"] = str(data_dir(cfg))
    return env


def spawn_worker(cfg: Settings) -> str:
    """A worker in its own process, detached, that leaves after a while with nothing to do. It
    starts with ``python -P`` in the data directory: nothing in the user's directory (a project's
    own ``worker.py`` or ``models/``) can shadow iter's modules."""
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
    return str(log)


async def ensure_worker(client: Client, cfg: Settings) -> None:
    if await worker_polling(client, cfg):
        return
    log = spawn_worker(cfg)
    say(f"Started a background worker (log {log}); `iter worker` runs one in the foreground")
    import asyncio

    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if await worker_polling(client, cfg):
            return
        await asyncio.sleep(0.3)
    fail(f"the background worker did not start polling in {WORKER_START_TIMEOUT_S} s; see {log}")
