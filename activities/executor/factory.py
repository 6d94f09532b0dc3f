"""Chooses the backend a request asked for; never falls back silently to a weaker one."""

from __future__ import annotations

from pathlib import Path

from activities.executor.base import Executor, ExecutorUnavailable, runs_root
from activities.executor.local import LocalExecutor
from models.config import ExecutorSettings


def executor_for(settings: ExecutorSettings, workspace: Path, request_key: str, data: Path) -> Executor:
    """``data``: the worker's data directory, where the request's journal lives (out of the workspace)."""
    if settings.backend == "local":
        return LocalExecutor(workspace, runs_root(data, request_key))
    if settings.backend == "docker":
        try:
            from activities.executor.docker import DockerExecutor
        except ImportError as exc:
            raise ExecutorUnavailable(
                "the Docker executor is not available in this install; "
                "reinstall iter (pip install -e .) or choose the local backend with --executor local"
            ) from exc
        return DockerExecutor(settings, workspace, request_key, data)
    raise ExecutorUnavailable(f"unknown executor {settings.backend!r}; choose docker or local")
