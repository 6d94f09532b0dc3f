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
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    now = time.time()
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace, task_queue=TaskQueue(name=cfg.temporal.task_queue), task_queue_type=kind
            )
        )
        if not any(p.last_access_time.ToSeconds() > now - POLLER_FRESH_S for p in resp.pollers):
            return False
    return True


def spawn_worker(cfg: Settings) -> str:
    """A worker in its own process, detached, that leaves after a while with nothing to do."""
    from models.config import data_dir

    folder = data_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "worker.log"
    env = dict(os.environ)
    env.update({"ITER_DATA_DIR": str(folder), "ITER_TASK_QUEUE": cfg.temporal.task_queue})
    if cfg.temporal.address:
        env["ITER_TEMPORAL_ADDRESS"] = cfg.temporal.address
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "--idle-exit", str(WORKER_IDLE_EXIT_S)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
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
