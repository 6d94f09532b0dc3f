"""The Temporal worker: registers every workflow and activity of iter.

``python worker.py`` or ``iter worker`` runs one in the foreground; ``iter orchestrate`` starts one
in the background when none is polling. ``--idle-exit`` lets such a worker leave once nothing of
iter's has run for a while."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.cleanup import release_executor
from activities.evidence import gather_evidence
from activities.execute import execute_steps
from activities.executor.sweep import sweep_containers, sweep_journals
from activities.git import git_commit, git_snapshot
from activities.hooks import load_hooks, run_hooks
from activities.llm import call_model
from activities.prompt import build_prompt
from activities.review import post_review, safety_review
from activities.session_prompt import render_session_prompt
from models.config import Settings, data_dir, load_settings
from temporal.client import connect, ensure_search_attributes
from temporal.redaction import RedactFailures
from temporal.shutdown import LeaveOnShutdown
from workflows.request import RequestWorkflow
from workflows.session import SessionWorkflow

WORKFLOWS: list[type] = [RequestWorkflow, SessionWorkflow]
ACTIVITIES: list[Any] = [
    build_prompt,
    call_model,
    safety_review,
    execute_steps,
    post_review,
    gather_evidence,
    release_executor,
]
ACTIVITIES += [load_hooks, run_hooks, git_snapshot, git_commit, render_session_prompt]
MAX_CONCURRENT_ACTIVITIES = 100
IDLE_CHECK_S = 15.0
SHUTDOWN_WAIT_S = 30.0
HEARTBEAT_THROTTLE = timedelta(seconds=1)
# A stopping worker hands its activities back at once (LeaveOnShutdown); this is the time their
# failures have to reach the server before the SDK would cancel them.
GRACEFUL_SHUTDOWN = timedelta(seconds=10)


def build_worker(client: Client, settings: Settings) -> Worker:
    return Worker(
        client,
        task_queue=settings.temporal.task_queue,
        workflows=WORKFLOWS,
        activities=ACTIVITIES,
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        # Heartbeats carry cancellation back to a running step: send them promptly, not every 8 s.
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        # No secret in a failure message reaches history; a stopping worker leaves steps running.
        interceptors=[RedactFailures(), LeaveOnShutdown()],
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )


async def _running_count(client: Client, settings: Settings) -> int:
    query = f"TaskQueue = '{settings.temporal.task_queue}' AND ExecutionStatus = 'Running'"
    return (await client.count_workflows(query)).count


async def _exit_when_idle(client: Client, settings: Settings, idle_exit_s: float, worker: Worker) -> None:
    """Leave after ``idle_exit_s`` with nothing of iter's running, or with the server unreachable
    for as long: a worker `iter orchestrate` spawned for a short-lived dev server must not outlive
    it (such workers accumulated, one per server, for hours)."""
    idle_since = time.monotonic()
    while True:
        await asyncio.sleep(min(IDLE_CHECK_S, max(idle_exit_s / 4, 0.5)))
        try:
            busy = await asyncio.wait_for(_running_count(client, settings), IDLE_CHECK_S) > 0
        except Exception:  # unreachable: counts as idle, so the limit applies to it as well
            busy = False
        if busy:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= idle_exit_s:
            with contextlib.suppress(Exception):
                # Polls against a dead server may not wind down on their own: bounded.
                await asyncio.wait_for(worker.shutdown(), SHUTDOWN_WAIT_S)
            return


async def run_worker(settings: Settings, idle_exit_s: float = 0.0, say: Any = print) -> None:
    client = await connect(settings, say=say)
    await ensure_search_attributes(client)
    await sweep_containers(client, say)  # containers of requests that ended while no worker ran
    await sweep_journals(client, data_dir(settings), say)  # and their local steps and journals
    worker = build_worker(client, settings)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    say(
        f"iter worker polling task queue {settings.temporal.task_queue!r} on {client.service_client.config.target_host}"
    )
    watchers: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
    if idle_exit_s > 0:
        watchers.append(asyncio.create_task(_exit_when_idle(client, settings, idle_exit_s, worker)))
    async with worker:
        await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
    for task in watchers:
        task.cancel()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="worker.py", description="Run an iter worker.")
    parser.add_argument("--idle-exit", type=float, default=0.0, help="exit after this many idle seconds")
    args = parser.parse_args(argv)
    try:
        asyncio.run(run_worker(load_settings(), args.idle_exit))
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        print(f"iter worker: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
