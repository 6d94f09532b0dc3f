"""The Temporal worker: registers every workflow and activity of iter.

``python worker.py`` or ``iter worker`` runs one in the foreground; ``iter orchestrate`` starts one
in the background when none is polling. ``--idle-exit`` lets such a worker leave once nothing of
iter's has run for a while, or at once when iter's code on disk changed (an upgrade) and nothing
runs."""

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
from activities.definitions import keep_definitions
from activities.evidence import gather_evidence
from activities.execute import execute_steps
from activities.executor.sweep import sweep_containers, sweep_journals
from activities.git import git_commit, git_snapshot
from activities.hooks import load_hooks, run_hooks
from activities.llm import call_model
from activities.prompt import build_prompt
from activities.review import post_review, safety_review
from activities.session_prompt import render_session_prompt
from activities.worktree import land_workspace, prepare_workspace
from models.config import Settings, data_dir, load_settings, setting_sources
from models.ownership import names_model_server
from models.queues import ROLES, QueueRole, parse_roles, queue_name
from temporal.client import connect, ensure_search_attributes
from temporal.code_version import code_fingerprint, record_started_code
from temporal.own_settings import WorkerOwnsSettings
from temporal.redaction import RedactFailures
from temporal.shutdown import LeaveOnShutdown
from workflows.request import RequestWorkflow
from workflows.session import SessionWorkflow

WORKFLOWS: list[type] = [RequestWorkflow, SessionWorkflow]
# What each queue's workers run. The workflow worker also runs the local activities (prompt
# assembly, the release of a request's executor) and the workspace's hooks and git.
ACTIVITIES_BY_ROLE: dict[QueueRole, list[Any]] = {
    "workflows": [
        build_prompt,
        keep_definitions,
        render_session_prompt,
        release_executor,
        load_hooks,
        run_hooks,
        git_snapshot,
        git_commit,
        prepare_workspace,  # the request's worktree, made and landed beside the checkout
        land_workspace,
    ],
    "llm": [call_model, safety_review, post_review],
    "exec": [execute_steps, gather_evidence],
}
ACTIVITIES: list[Any] = [a for acts in ACTIVITIES_BY_ROLE.values() for a in acts]
MAX_CONCURRENT_ACTIVITIES = 100
IDLE_CHECK_S = 15.0
SHUTDOWN_WAIT_S = 30.0
# How soon a heartbeat reaches the server. A model call heartbeats each token (the live tail,
# activities/live.py): at most 20 heartbeats a second per call, and tokens on a screen within it.
HEARTBEAT_THROTTLE = timedelta(milliseconds=50)
# A stopping worker hands its activities back at once (LeaveOnShutdown); this is the time their
# failures have to reach the server before the SDK would cancel them.
GRACEFUL_SHUTDOWN = timedelta(seconds=10)


class Workers:
    """The workers of one process, one per queue it serves, started and stopped together."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Workers:
        for w in self.workers:
            await self._stack.enter_async_context(w)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def shutdown(self) -> None:
        await asyncio.gather(*(w.shutdown() for w in self.workers))


def build_worker(
    client: Client, settings: Settings, roles: Sequence[QueueRole] = ROLES, own_endpoint: bool = True
) -> Workers:
    """Workers for ``roles`` (all by default). ``settings`` are the worker's own: its keys
    (models/ownership.py) win over what a workflow's input carries; the model server only when
    ``own_endpoint`` (its layers name one)."""
    # No secret in a failure message reaches history; a stopping worker leaves steps running;
    # the worker's own settings win over the input's for the keys it owns.
    interceptors = [RedactFailures(), LeaveOnShutdown(), WorkerOwnsSettings(settings, own_endpoint)]
    workers = []
    for role in roles:
        workers.append(
            Worker(
                client,
                task_queue=queue_name(settings.temporal.task_queue, role),
                workflows=WORKFLOWS if role == "workflows" else [],
                activities=ACTIVITIES_BY_ROLE[role],
                max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
                # Heartbeats carry cancellation back and the live tail out: promptly, not every 8 s.
                max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
                default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
                interceptors=interceptors,
                graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
            )
        )
    return Workers(workers)


async def _running_count(client: Client, settings: Settings) -> int:
    query = f"TaskQueue = '{settings.temporal.task_queue}' AND ExecutionStatus = 'Running'"
    return (await client.count_workflows(query)).count


async def _exit_when_idle(
    client: Client, settings: Settings, idle_exit_s: float, worker: Workers, started_code: str, say: Any
) -> None:
    """Leave after ``idle_exit_s`` with nothing of iter's running, or with the server unreachable
    for as long: a worker `iter orchestrate` spawned for a short-lived dev server must not outlive
    it (such workers accumulated, one per server, for hours). Leave at the first idle check once
    iter's code on disk is no longer the code this worker started with: after an upgrade, the
    next request must not run on the old code."""
    idle_since = time.monotonic()
    while True:
        await asyncio.sleep(min(IDLE_CHECK_S, max(idle_exit_s / 4, 0.5)))
        try:
            busy = await asyncio.wait_for(_running_count(client, settings), IDLE_CHECK_S) > 0
        except Exception:  # unreachable: counts as idle, so the limit applies to it as well
            busy = False
        if busy:
            idle_since = time.monotonic()
            continue
        upgraded = code_fingerprint() != started_code
        if upgraded or time.monotonic() - idle_since >= idle_exit_s:
            if upgraded:
                say("iter worker: iter's code on disk changed since this worker started (an upgrade); leaving")
            with contextlib.suppress(Exception):
                # Polls against a dead server may not wind down on their own: bounded.
                await asyncio.wait_for(worker.shutdown(), SHUTDOWN_WAIT_S)
            return


async def run_worker(
    settings: Settings, idle_exit_s: float = 0.0, say: Any = print, roles: Sequence[QueueRole] = ROLES
) -> None:
    started_code = code_fingerprint()  # what is on disk now, as close to the imports as it gets
    if idle_exit_s > 0:  # a background worker: the CLI that spawned it reads which code it runs
        record_started_code(data_dir(settings), started_code)
    client = await connect(settings, say=say)
    await ensure_search_attributes(client)
    if "exec" in roles:  # what runs steps cleans up after the requests that ended while none ran
        await sweep_containers(client, say)
        await sweep_journals(client, data_dir(settings), say)  # and their local steps and journals
    # A worker whose environment and iter.yml name no model server serves the one each request
    # found (the CLI's embedded server, say), not a default address where nothing answers.
    worker = build_worker(client, settings, roles, own_endpoint=names_model_server(setting_sources()))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    queues = ", ".join(repr(queue_name(settings.temporal.task_queue, r)) for r in roles)
    say(f"iter worker polling task queue(s) {queues} on {client.service_client.config.target_host}")
    watchers: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
    if idle_exit_s > 0:
        leave = _exit_when_idle(client, settings, idle_exit_s, worker, started_code, say)
        watchers.append(asyncio.create_task(leave))
    async with worker:
        await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
    for task in watchers:
        task.cancel()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="worker.py", description="Run an iter worker.")
    parser.add_argument("--idle-exit", type=float, default=0.0, help="exit after this many idle seconds")
    parser.add_argument("--queues", default=",".join(ROLES), help="which queues to serve: workflows,llm,exec")
    args = parser.parse_args(argv)
    try:
        roles = parse_roles(args.queues)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(run_worker(load_settings(), args.idle_exit, roles=roles))
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        print(f"iter worker: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
