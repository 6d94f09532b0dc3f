"""Removes what requests nobody will release left behind: containers, and local steps' processes
and journals. Request containers nobody will release: their workflow closed without the
``release_executor`` activity running (terminated, or its worker died as it ended) or no longer
exists on this Temporal service. A network step's own container carries the same labels (and
``iter.step``), so it is judged by its request like the request's container.

Runs when a worker starts. A container whose workflow still runs is kept even if the worker that
created it died: the retried activity adopts the step running in it, and the request releases it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.executor.base import ExecutorUnavailable, streams_root
from activities.executor.local import kill_running

SWEEP_TIMEOUT_S = 30.0


def split_key(request_key: str) -> tuple[str, str]:
    """``<workflow id>.<run id>``: run ids have no dots, workflow ids may."""
    workflow_id, _, run_id = request_key.rpartition(".")
    return (workflow_id, run_id) if workflow_id else (request_key, "")


async def _workflow_state(client: Client, request_key: str) -> str | None:
    """running, closed, or unknown (not on this Temporal service); None when Temporal cannot say."""
    workflow_id, run_id = split_key(request_key)
    try:
        desc = await client.get_workflow_handle(workflow_id, run_id=run_id or None).describe()
    except RPCError as exc:
        return "unknown" if exc.status == RPCStatusCode.NOT_FOUND else None
    return "running" if desc.status == WorkflowExecutionStatus.RUNNING else "closed"


def _request_containers() -> list[Any]:
    from activities.executor.container_spec import LABEL_MANAGED
    from activities.executor.docker_client import docker_client

    return list(docker_client().containers.list(all=True, filters={"label": LABEL_MANAGED}))


def _busy(container: Any) -> bool:
    """A step is running in it right now (an exec is alive)."""
    container.reload()
    return bool(container.attrs.get("ExecIDs"))


async def sweep_containers(client: Client, say: Callable[[str], None] = print) -> list[str]:
    """Remove stale request containers; returns their names. Never raises: a worker must start
    even when Docker is absent (the local backend needs none)."""
    try:
        return await asyncio.wait_for(_sweep(client, say), SWEEP_TIMEOUT_S)
    except (ImportError, ExecutorUnavailable):
        return []  # no Docker here: nothing to sweep
    except Exception as exc:  # a failed sweep is tried again at the next start
        say(f"container sweep skipped: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        return []


async def _sweep(client: Client, say: Callable[[str], None]) -> list[str]:
    from activities.executor.container_spec import LABEL_REQUEST

    removed: list[str] = []
    for container in await asyncio.to_thread(_request_containers):
        state = await _workflow_state(client, container.labels.get(LABEL_REQUEST, ""))
        # Unknown here may be a request of another Temporal service on the same Docker engine:
        # it goes only when no step runs in it (a live request recreates its container).
        if state == "closed" or (state == "unknown" and not await asyncio.to_thread(_busy, container)):
            await asyncio.to_thread(_remove, container)
            removed.append(container.name)
    if removed:
        say(f"removed {len(removed)} container(s) of requests that had ended: {', '.join(removed)}")
    return removed


def _remove(container: Any) -> None:
    from docker.errors import NotFound

    with contextlib.suppress(NotFound):
        container.remove(force=True)


async def sweep_journals(client: Client, data: Path, say: Callable[[str], None] = print) -> list[str]:
    """Kill the local steps and remove the journals of requests that ended without a release (a
    terminated workflow, a worker that died as it ended): no orphan writes on once its journal is
    gone. Never raises."""
    removed: list[str] = []
    try:
        for journal in sorted((data / "journals").glob("*")):
            if await _journal_ended(client, journal.name):
                kill_running(journal)
                shutil.rmtree(journal, ignore_errors=True)
                shutil.rmtree(streams_root(data, journal.name), ignore_errors=True)
                removed.append(journal.name)
    except Exception as exc:  # tried again at the next start
        say(f"journal sweep skipped: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    if removed:
        say(f"removed the journals (and killed the steps) of {len(removed)} request(s) that had ended")
    return removed


async def _journal_ended(client: Client, key: str) -> bool:
    """The run that owns this journal has ended. A session's key names its workflow and its own
    uid (stable across continue-as-new), not a run: then its workflow's latest run decides."""
    state = await _workflow_state(client, key)
    if state != "unknown":
        return state == "closed"
    workflow_id, _ = split_key(key)
    return await _workflow_state(client, workflow_id) in ("closed", "unknown")
