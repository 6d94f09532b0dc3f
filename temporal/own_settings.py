"""Activities work with the worker's own settings for the keys the worker owns (models/ownership.py):
one interceptor rewrites the ``settings`` every activity input carries, so no activity can forget
to, and the frozen input in history stays what the workflow replays."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from models.config import Settings
from models.ownership import for_worker


class WorkerOwnsSettings(Interceptor):
    def __init__(self, own: Settings) -> None:
        self.own = own

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next, self.own)


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, own: Settings) -> None:
        super().__init__(next)
        self.own = own

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        input.args = [self._resolve(arg) for arg in input.args]
        return await self.next.execute_activity(input)

    def _resolve(self, arg: Any) -> Any:
        if isinstance(arg, Settings):
            return for_worker(arg, self.own)
        if isinstance(arg, BaseModel) and isinstance(getattr(arg, "settings", None), Settings):
            return arg.model_copy(update={"settings": for_worker(arg.settings, self.own)})  # type: ignore[attr-defined]
        return arg
