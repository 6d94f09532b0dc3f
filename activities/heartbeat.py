"""Heartbeats while an activity works: a worker that dies in one is then seen within the
heartbeat timeout (seconds) instead of the start-to-close timeout (minutes), and the next attempt
starts on a live worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity

HEARTBEAT_EVERY_S = 2.0


async def _beat(progress: dict[str, object] | None) -> None:
    while True:
        if progress is None:
            activity.heartbeat()
        else:
            activity.heartbeat(dict(progress))  # a copy: the details are read on the next attempt
        await asyncio.sleep(HEARTBEAT_EVERY_S)


@contextlib.asynccontextmanager
async def heartbeating(progress: dict[str, object] | None = None) -> AsyncIterator[None]:
    """Heartbeat every ``HEARTBEAT_EVERY_S`` while the body runs, with ``progress`` (as it is at
    each beat) as the details. Outside an activity (the CLI calling the same code) it does nothing."""
    if not activity.in_activity():
        yield
        return
    beat = asyncio.create_task(_beat(progress))
    try:
        yield
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
