"""One workflow's server-sent events for the page: ``state`` whenever the workflow's state changes
(its status query, read a few times a second while it runs), ``live`` for each event of the
workflow's own stream (model tokens, step output lines, ...) as it arrives, and ``end`` once the
workflow has closed and everything is sent. A ``live`` event's id is its stream offset, so a
reconnecting EventSource resumes where it stopped (``Last-Event-ID``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from temporalio.client import Client

from dashboard import view
from dashboard.live import live_events

STATE_POLL_S = 0.5
LIVE_DRAIN_S = 5.0  # after the workflow closed, how long its stream may take to deliver the rest
KEEPALIVE_S = 15.0  # a comment line now and then keeps proxies from closing an idle stream


def sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One SSE message. JSON never holds a raw newline, so the data is one line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _poll_state(client: Client, links: view.Links, workflow_id: str, out: asyncio.Queue[bytes]) -> None:
    last = ""
    while True:
        try:
            current = await view.detail(client, links, workflow_id)
        except view.ActionRefused as exc:
            await out.put(sse("problem", {"message": str(exc)}))
            await out.put(sse("end", {"status": "unknown"}))
            return
        encoded = json.dumps(current, sort_keys=True)
        if encoded != last:
            await out.put(sse("state", current))
            last = encoded
        if current["status"] != "running":
            await out.put(sse("end", {"status": current["status"]}))
            return
        await asyncio.sleep(STATE_POLL_S)


async def _pump_live(client: Client, workflow_id: str, from_offset: int, out: asyncio.Queue[bytes]) -> None:
    async for offset, event in live_events(client, workflow_id, from_offset):
        await out.put(sse("live", event, event_id=None if offset is None else str(offset)))


async def events(client: Client, links: view.Links, workflow_id: str, from_offset: int = 0) -> AsyncIterator[bytes]:
    """The merged feed; ends after the workflow has closed and its stream is drained."""
    out: asyncio.Queue[bytes] = asyncio.Queue()
    live = asyncio.create_task(_pump_live(client, workflow_id, from_offset, out))
    state = asyncio.create_task(_poll_state(client, links, workflow_id, out))
    yield b"retry: 1000\n\n"
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(out.get(), KEEPALIVE_S)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            if chunk.startswith(b"event: end"):
                # The state says closed: let the stream drain what remains, then finish.
                with contextlib.suppress(Exception):  # a stream that fails or never ends is not the page's problem
                    await asyncio.wait_for(asyncio.shield(live), timeout=LIVE_DRAIN_S)
                while not out.empty():
                    yield out.get_nowait()
                yield chunk
                return
            yield chunk
    finally:
        for task in (live, state):
            task.cancel()
