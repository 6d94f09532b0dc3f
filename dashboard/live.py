"""The workflow's own event stream (``temporalio.contrib.workflow_streams``), as plain dicts with
their offsets. A workflow that hosts no stream simply has no live events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.service import RPCError


async def live_events(
    client: Client, workflow_id: str, from_offset: int = 0
) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    stream = WorkflowStreamClient.create(client, workflow_id)
    try:
        async for item in stream.subscribe(None, from_offset):
            data = item.data if isinstance(item.data, dict) else {"value": item.data}
            yield item.offset, {"topic": item.topic, **data}
    except (WorkflowUpdateFailedError, RPCError):
        return
