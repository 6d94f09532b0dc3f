"""Reading a workflow's live event stream, from any machine that reaches Temporal.

The reader API (``iter orchestrate``, ``iter build``, ``iter watch`` and the web dashboard use it)::

    from temporal.events import subscribe
    async for item in subscribe(client, workflow_id):        # client: temporal.client.connect(...)
        item.offset, item.event                              # event: one of models.events' types
        if isinstance(item.event, Tokens): ...

``subscribe`` yields the events the stream still retains, oldest first, then new ones as they
come, and ends after the workflow's ``Finished`` event or once the workflow has closed and its
last events are read. It follows continue-as-new (a session's runs share one stream). What the
reader has to say about the stream itself arrives as a ``Notice`` event: events dropped by the
retention bound before it read them, a server or worker that does not answer (it keeps trying).
Pass ``tokens=False`` to skip model tokens, ``output=False`` to skip step and hook output.

How: it polls the stream's ``__temporal_workflow_stream_poll`` *query* every ``poll_s``. The
contrib ``subscribe()`` uses a long-poll *update* instead, which returns a little sooner but
writes every poll and every item it returns into the workflow's history again (measured in
bench/bench_latency.py); a query writes nothing, so any number of viewers cost no history.

Model tokens come sooner than the stream carries them (one signal a second: each signal is
history): while a model call is open, the reader also reads the call's heartbeat (``describe()``
every ``TAIL_POLL_S``), whose details hold the answer's end (``LiveTail``), and yields what is new
there. Each call's characters are counted, so the stream's own ``Tokens`` later yield only what
the heartbeat did not show: every character once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.workflow_streams import PollInput, PollResult
from temporalio.contrib.workflow_streams._types import _decode_payload
from temporalio.service import RPCError, RPCStatusCode

from models.events import (
    LIVE_TAIL_KEY,
    TOPIC_EVENTS,
    TOPIC_OUTPUT,
    TOPIC_TOKENS,
    TOPICS,
    Finished,
    LiveEvent,
    LiveTail,
    ModelEnded,
    ModelFailed,
    ModelStarted,
    Notice,
    Tokens,
    parse_event,
)

POLL_QUERY = "__temporal_workflow_stream_poll"
OFFSET_QUERY = "__temporal_workflow_stream_offset"
POLL_S = 0.05
TAIL_POLL_S = 0.05  # while a model call is open (the worker sends a heartbeat at most every 50 ms too)
STATUS_EVERY_S = 1.0  # when idle, how often to ask whether the workflow has closed
QUERY_TIMEOUT = timedelta(seconds=10)
RETRY_S = 1.0
CLOSED = (
    WorkflowExecutionStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.CANCELED,
    WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT,
)


class StreamNotFound(LookupError):
    """No workflow with that id."""


@dataclass(frozen=True)
class StreamItem:
    offset: int  # the item's position in the stream: pass offset + 1 as from_offset to resume after it
    topic: str
    event: LiveEvent
    from_heartbeat: bool = False  # tokens a heartbeat showed first: offset is the last stream item's


def topics_for(tokens: bool = True, output: bool = True) -> list[str]:
    return [TOPIC_EVENTS, *([TOPIC_TOKENS] if tokens else []), *([TOPIC_OUTPUT] if output else [])]


async def read_batch(handle: WorkflowHandle[Any, Any], topics: list[str], from_offset: int) -> PollResult:
    """One poll: the retained items at or after ``from_offset`` (from the retained start when
    those were dropped), at most about 1 MB of them (``more_ready`` then says so)."""
    return await handle.query(
        POLL_QUERY,
        PollInput(topics=topics, from_offset=from_offset),
        result_type=PollResult,
        rpc_timeout=QUERY_TIMEOUT,
    )


def decode(result: PollResult) -> list[StreamItem]:
    items: list[StreamItem] = []
    for wire in result.items:
        try:
            event = parse_event(_decode_payload(wire.data).data)
        except (ValidationError, ValueError):
            event = Notice(message=f"an event this version cannot read (topic {wire.topic}, offset {wire.offset})")
        items.append(StreamItem(offset=wire.offset, topic=wire.topic, event=event))
    return items


async def _status(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus | None:
    try:
        return (await handle.describe()).status
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise StreamNotFound(f"no workflow {handle.id}") from None
        return None


class TokenLane:
    """Each model call's characters shown so far, from either lane: what is new in a heartbeat's
    tail or in a stream ``Tokens`` item, and nothing twice."""

    def __init__(self) -> None:
        self.shown: dict[str, int] = {}
        self.open = 0  # model calls started and not yet ended, by the stream's events

    def follow(self, event: LiveEvent) -> LiveEvent | None:
        """A stream event as it should be shown (a ``Tokens`` item cut to its unseen part), or None."""
        if isinstance(event, ModelStarted):
            self.open += 1
        elif isinstance(event, (ModelEnded, ModelFailed, Finished)):
            self.open = 0 if isinstance(event, Finished) else max(0, self.open - 1)
        if not isinstance(event, Tokens) or not event.call:
            return event
        seen = self.shown.get(event.call, 0)
        end = event.at + len(event.text)
        if end <= seen:
            return None
        self.shown[event.call] = end
        return event.model_copy(update={"text": event.text[max(0, seen - event.at) :], "at": max(seen, event.at)})

    def from_tail(self, tail: LiveTail) -> Tokens | None:
        """What the heartbeat shows that is new; None when nothing is, or when the tail no longer
        reaches back to what was shown (the stream fills that gap, in order)."""
        seen = self.shown.get(tail.call, 0)
        start = tail.chars - len(tail.tail)
        if tail.chars <= seen or start > seen:
            return None
        self.shown[tail.call] = tail.chars
        return Tokens(role=tail.role, text=tail.tail[seen - start :], call=tail.call, at=seen)


def live_tails(desc: Any) -> list[LiveTail]:
    """The answer tails in the heartbeats of the workflow's running activities."""
    from temporal.payloads import decoded_details

    tails: list[LiveTail] = []
    for pending in desc.raw_description.pending_activities:
        details = decoded_details(pending.heartbeat_details.payloads)
        if isinstance(details, dict) and isinstance(details.get(LIVE_TAIL_KEY), dict):
            with contextlib.suppress(ValidationError):
                tails.append(LiveTail.model_validate(details[LIVE_TAIL_KEY]))
    return tails


async def _tails(handle: WorkflowHandle[Any, Any], lane: TokenLane, wait_s: float) -> list[LiveTail]:
    """After ``wait_s``, the answer tails in the running activities' heartbeats; [] when describe
    fails (the stream carries the tokens anyway). No running activity means no open call (a call
    whose end was never published: its worker died), and the polling stops."""
    await asyncio.sleep(wait_s)
    try:
        desc = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
    except RPCError:
        return []
    if not desc.raw_description.pending_activities:
        lane.open = 0
    return live_tails(desc)


async def _stream_items(
    handle: WorkflowHandle[Any, Any], topics: list[str], from_offset: int, poll_s: float
) -> AsyncGenerator[StreamItem, None]:
    """The stream's own items, polled with the query, with notices about the stream itself."""
    offset = from_offset
    last_status_check = 0.0
    closed = False
    trouble = ""
    while True:
        try:
            result = await read_batch(handle, topics, offset)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise StreamNotFound(f"no workflow {handle.id}") from None
            status = await _status(handle)
            if status in CLOSED:
                return  # closed and its stream cannot be read (no worker to answer): nothing more comes
            message = f"the event stream does not answer ({exc.message}); retrying"
            if message != trouble:
                trouble = message
                yield StreamItem(offset=offset, topic=TOPIC_EVENTS, event=Notice(message=message))
            await asyncio.sleep(RETRY_S)
            continue
        trouble = ""
        items = decode(result)
        # Only an unfiltered read can tell a gap from items of topics it did not ask for.
        if items and items[0].offset > offset and len(topics) == len(TOPICS):
            missed = items[0].offset - offset
            yield StreamItem(
                offset=offset,
                topic=TOPIC_EVENTS,
                event=Notice(message=f"{missed} earlier event(s) were dropped by the stream's retention bound"),
            )
        for item in items:
            yield item
            if isinstance(item.event, Finished):
                return
        offset = result.next_offset
        if result.more_ready:
            continue
        if closed:
            return
        now = time.monotonic()
        if not items and now - last_status_check >= STATUS_EVERY_S:
            last_status_check = now
            closed = await _status(handle) in CLOSED  # one more read, then done
            if closed:
                continue
        await asyncio.sleep(poll_s)


async def subscribe(
    client: Client,
    workflow_id: str,
    *,
    from_offset: int = 0,
    tokens: bool = True,
    output: bool = True,
    poll_s: float = POLL_S,
) -> AsyncIterator[StreamItem]:
    """The workflow's events from ``from_offset`` on; see the module's docstring. The stream's
    poll and the heartbeat's run side by side (a slow stream query never delays the tokens), and
    only while the caller is reading: nothing polls for a reader that stopped."""
    handle = client.get_workflow_handle(workflow_id)  # no run id: the latest run, across continue-as-new
    lane = TokenLane()
    stream = _stream_items(handle, topics_for(tokens, output), from_offset, poll_s)
    next_item: asyncio.Future[StreamItem] | None = None
    tails: asyncio.Future[list[LiveTail]] | None = None
    last = from_offset - 1  # the last stream item's offset: a heartbeat's tokens come after it
    tail_due = 0.0
    try:
        while True:
            if next_item is None:
                next_item = asyncio.ensure_future(anext(stream))
            if tails is None and tokens and lane.open:
                tails = asyncio.ensure_future(_tails(handle, lane, max(0.0, tail_due - time.monotonic())))
            await asyncio.wait([f for f in (next_item, tails) if f is not None], return_when=asyncio.FIRST_COMPLETED)
            if tails is not None and tails.done():
                tail_due = time.monotonic() + TAIL_POLL_S
                for tail in tails.result():
                    fast = lane.from_tail(tail)
                    if fast is not None:
                        yield StreamItem(offset=last, topic=TOPIC_TOKENS, event=fast, from_heartbeat=True)
                tails = None
            if not next_item.done():
                continue
            try:
                got = next_item.result()
            except StopAsyncIteration:
                return
            next_item = None
            if not isinstance(got.event, Notice):  # a reader's notice has no offset of its own
                last = got.offset
            shown = lane.follow(got.event)
            if shown is not None:
                yield got if shown is got.event else StreamItem(got.offset, got.topic, shown)
            if isinstance(got.event, Finished):
                return
    finally:
        for future in (next_item, tails):
            if future is not None and not future.done():
                future.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await future
        await stream.aclose()


async def end_offset(client: Client, workflow_id: str) -> int:
    """The offset the next event will have: subscribe from it to see only what is new."""
    return await client.get_workflow_handle(workflow_id).query(OFFSET_QUERY, result_type=int, rpc_timeout=QUERY_TIMEOUT)
