"""One workflow's server-sent events for the page: ``state`` whenever the workflow's state changes
(its status query, read again soon after each event of the stream that is not a token or an
output line, and every few seconds regardless), ``live`` for each event of the
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

STATE_POLL_S = 2.0  # the state is read at least this often while the workflow runs...
STATE_MIN_GAP_S = 0.2  # ...and soon after a stream event says it changed, at most this often
RETRY_S = 1.0
LIVE_DRAIN_S = 5.0  # after the workflow closed, how long its stream may take to deliver the rest
KEEPALIVE_S = 15.0  # a comment line now and then keeps proxies from closing an idle stream
QUIET_KINDS = {"tokens", "output"}  # stream events that change nothing the state shows


def sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One SSE message. JSON never holds a raw newline, so the data is one line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _poll_state(
    client: Client, links: view.Links, workflow_id: str, out: asyncio.Queue[bytes], changed: asyncio.Event
) -> None:
    last, trouble = "", ""
    while True:
        changed.clear()
        try:
            current = await view.detail(client, links, workflow_id)
        except view.ActionRefused as exc:
            if exc.status != 503:  # no such workflow: nothing will come
                await out.put(sse("problem", {"message": str(exc)}))
                await out.put(sse("end", {"status": "unknown"}))
                return
            if str(exc) != trouble:  # Temporal does not answer: say so once, keep trying
                trouble = str(exc)
                await out.put(sse("problem", {"message": trouble}))
            await asyncio.sleep(RETRY_S)
            continue
        trouble = ""
        encoded = json.dumps(current, sort_keys=True)
        if encoded != last:
            await out.put(sse("state", current))
            last = encoded
        if current["status"] != "running":
            await out.put(sse("end", {"status": current["status"]}))
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), STATE_POLL_S)
        await asyncio.sleep(STATE_MIN_GAP_S)  # a burst of events costs one read


async def _pump_live(
    client: Client, workflow_id: str, from_offset: int, out: asyncio.Queue[bytes], changed: asyncio.Event
) -> None:
    async for offset, event in live_events(client, workflow_id, from_offset):
        await out.put(sse("live", event, event_id=None if offset is None else str(offset)))
        if event.get("kind") not in QUIET_KINDS:
            changed.set()


async def events(client: Client, links: view.Links, workflow_id: str, from_offset: int = 0) -> AsyncIterator[bytes]:
    """The merged feed; ends after the workflow has closed and its stream is drained."""
    out: asyncio.Queue[bytes] = asyncio.Queue()
    changed = asyncio.Event()
    live = asyncio.create_task(_pump_live(client, workflow_id, from_offset, out, changed))
    state = asyncio.create_task(_poll_state(client, links, workflow_id, out, changed))
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
