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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.workflow_streams import PollInput, PollResult
from temporalio.contrib.workflow_streams._types import _decode_payload
from temporalio.service import RPCError, RPCStatusCode

from models.events import TOPIC_EVENTS, TOPIC_OUTPUT, TOPIC_TOKENS, TOPICS, Finished, LiveEvent, Notice, parse_event

POLL_QUERY = "__temporal_workflow_stream_poll"
OFFSET_QUERY = "__temporal_workflow_stream_offset"
POLL_S = 0.05
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


async def subscribe(
    client: Client,
    workflow_id: str,
    *,
    from_offset: int = 0,
    tokens: bool = True,
    output: bool = True,
    poll_s: float = POLL_S,
) -> AsyncIterator[StreamItem]:
    """The workflow's events from ``from_offset`` on; see the module's docstring."""
    handle = client.get_workflow_handle(workflow_id)  # no run id: the latest run, across continue-as-new
    topics = topics_for(tokens, output)
    offset = from_offset
    last_status_check = 0.0
    closed = False
    trouble = ""
    while True:
        try:
            result = await read_batch(handle, topics, offset)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise StreamNotFound(f"no workflow {workflow_id}") from None
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


async def end_offset(client: Client, workflow_id: str) -> int:
    """The offset the next event will have: subscribe from it to see only what is new."""
    return await client.get_workflow_handle(workflow_id).query(OFFSET_QUERY, result_type=int, rpc_timeout=QUERY_TIMEOUT)
