"""The workflow's own event stream (models/events.py, read with temporal/events.subscribe), as
JSON-ready dicts with their offsets, for the SSE feed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from temporalio.client import Client

from models.events import Notice
from temporal.events import StreamNotFound, subscribe


async def live_events(
    client: Client, workflow_id: str, from_offset: int = 0
) -> AsyncIterator[tuple[int | None, dict[str, Any]]]:
    """Every event from ``from_offset`` on; ends with the workflow (or at once when there is none).
    A reader's own notice has no offset of its own: resuming after it must not skip an event."""
    try:
        async for item in subscribe(client, workflow_id, from_offset=from_offset):
            offset = None if isinstance(item.event, Notice) else item.offset
            yield offset, item.event.model_dump(mode="json")
    except StreamNotFound:
        return
