"""Releasing what a request holds in its executor (its container), whatever way it ended."""

from __future__ import annotations

from pathlib import Path

from temporalio import activity

from activities.executor import executor_for
from models.config import Settings


@activity.defn
async def release_executor(workflow_id: str, workspace: str, settings: Settings) -> None:
    executor = executor_for(settings.executor, Path(workspace), workflow_id)
    await executor.close()
