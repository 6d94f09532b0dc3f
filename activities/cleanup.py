"""Releasing what a request holds, whatever way it ended: its executor (a container) and its run
journals, which only matter while the request runs (the history keeps every result)."""

from __future__ import annotations

import shutil
from pathlib import Path

from temporalio import activity

from activities.executor import ExecutorUnavailable, executor_for
from activities.executor.base import runs_root
from models.config import Settings


@activity.defn
async def release_executor(run_key: str, workspace: str, settings: Settings) -> None:
    try:
        executor = executor_for(settings.executor, Path(workspace), run_key)
        await executor.close()
    except ExecutorUnavailable:
        activity.logger.warning("executor unavailable at release; the worker's sweep removes what is left")
    shutil.rmtree(runs_root(Path(workspace), run_key), ignore_errors=True)
