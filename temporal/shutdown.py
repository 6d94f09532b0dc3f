"""A graceful worker stop (SIGTERM, Ctrl-C) leaves running work to the next worker.

When the worker starts shutting down, every running activity stops waiting and fails with a
retryable ``WorkerShutdown``: Temporal hands the attempt to the next worker at once. A step's
process is left running (the executors check ``leaving_to_next_worker``), so the next worker's
attempt adopts it instead of running it again; a model call simply starts over there."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

SHUTDOWN_MESSAGE = "the worker stopped; the next worker takes this over (a running step keeps running)"


def leaving_to_next_worker() -> bool:
    """True when this activity is being abandoned by a worker that shuts down: nothing it started
    may be killed, the next attempt adopts it."""
    return activity.in_activity() and activity.is_worker_shutdown()


class LeaveOnShutdown(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Leaving(next)


class _Leaving(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        work = asyncio.ensure_future(self.next.execute_activity(input))
        stop = asyncio.ensure_future(activity.wait_for_worker_shutdown())
        try:
            await asyncio.wait([work, stop], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # Cancelled by the workflow: the activity's own cancel handling (killing its step) runs
            # to its end before the cancellation is reported.
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            raise
        finally:
            stop.cancel()
        if work.done():
            return work.result()
        work.cancel()
        with contextlib.suppress(BaseException):
            await work  # the executors see the shutdown and leave their step running
        raise ApplicationError(SHUTDOWN_MESSAGE, type="WorkerShutdown")
