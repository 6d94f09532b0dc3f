"""A workflow's event stream (``temporalio.contrib.workflow_streams``): what the workflow publishes
itself, and the bound on what the stream retains.

Events the workflow publishes cost no history: replay rebuilds them from the history that is
there anyway. Activities publish through signals (``activities/live.py``). Readers use the
stream's poll query (``temporal/events.py``). Deterministic: no I/O here.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel
    from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamState, WorkflowTopicHandle

    from models.events import KEEP_AFTER_TRIM, MAX_RETAINED, topic_of


class LiveStream:
    """Construct it from the workflow's ``__init__`` (the contrib stream registers its handlers
    there); ``prior`` is the state a continued-as-new run carries over."""

    def __init__(self, prior: WorkflowStreamState | None = None) -> None:
        self.stream = WorkflowStream(prior)
        self._topics: dict[str, WorkflowTopicHandle[Any]] = {}

    def publish(self, event: BaseModel) -> None:
        name = topic_of(event)
        if name not in self._topics:
            self._topics[name] = self.stream.topic(name)
        self._topics[name].publish(event)
        self.trim()

    def trim(self) -> None:
        """Keep the retained log bounded: a reader that falls behind is told how much it missed."""
        end = self.stream._on_offset()  # the contrib stream exposes its end only as a query handler
        if end - self.stream._base_offset > MAX_RETAINED:
            self.stream.truncate(end - KEEP_AFTER_TRIM)

    def state(self) -> WorkflowStreamState:
        """What a continue-as-new carries over: the retained log, its offsets and the publishers'
        de-duplication state."""
        self.trim()
        self.stream.detach_pollers()
        return self.stream.get_state()
