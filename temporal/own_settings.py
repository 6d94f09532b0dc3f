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
    """``own_endpoint``: whether the worker's own layers name a model server (else the request's
    stands: models/ownership.ENDPOINT_KEYS)."""

    def __init__(self, own: Settings, own_endpoint: bool = True) -> None:
        self.own = own
        self.own_endpoint = own_endpoint

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next, self.own, self.own_endpoint)


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, own: Settings, own_endpoint: bool) -> None:
        super().__init__(next)
        self.own = own
        self.own_endpoint = own_endpoint

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        input.args = [self._resolve(arg) for arg in input.args]
        return await self.next.execute_activity(input)

    def _resolve(self, arg: Any) -> Any:
        if isinstance(arg, Settings):
            return for_worker(arg, self.own, self.own_endpoint)
        if isinstance(arg, BaseModel) and isinstance(getattr(arg, "settings", None), Settings):
            own = for_worker(arg.settings, self.own, self.own_endpoint)  # type: ignore[attr-defined]
            return arg.model_copy(update={"settings": own})  # type: ignore[attr-defined]
        return arg
