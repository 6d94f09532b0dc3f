"""Releasing what a request holds, whatever way it ended: its executor (a container) and its run
journals, which only matter while the request runs (the history keeps every result)."""

from __future__ import annotations

import shutil
from pathlib import Path

from temporalio import activity

from activities.executor import ExecutorUnavailable, executor_for
from activities.executor.base import runs_root, streams_root
from models.config import Settings, data_dir


@activity.defn
async def release_executor(run_key: str, workspace: str, settings: Settings) -> None:
    data = data_dir(settings)
    try:
        # Its steps' processes and containers go first: nothing of it runs once its journal is gone.
        executor = executor_for(settings.executor, Path(workspace), run_key, data)
        await executor.close()
    except ExecutorUnavailable:
        activity.logger.warning("executor unavailable at release; the worker's sweep removes what is left")
    shutil.rmtree(runs_root(data, run_key), ignore_errors=True)
    shutil.rmtree(streams_root(data, run_key), ignore_errors=True)
