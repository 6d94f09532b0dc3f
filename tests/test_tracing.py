"""Asked for, OpenTelemetry gets a span for the workflow and for each of its activities."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from models.config import Settings
from temporal.client import connect
from temporal.tracing import tracing_interceptors
from tests import replies as r
from tests.fake_llm import FakeModel
from tests.pipeline import run_request
from worker import build_worker


def test_no_tracing_unless_asked() -> None:
    assert tracing_interceptors({}) == []


async def test_spans_for_the_workflow_and_every_activity(
    settings: Settings, workspace: Path, fake: FakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    monkeypatch.setenv("ITER_OTEL", "console")  # our provider is set already, so it is kept
    client = await connect(settings, start_server=False)
    fake.default("plan", r.plan(r.write("s1", "notes.txt", "hi\n"), r.verify("s2", "test -f notes.txt")))
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())

    async with build_worker(client, settings):
        state = await run_request(client, settings, workspace)

    assert state.outcome == "passed"
    names = {span.name for span in exporter.get_finished_spans()}
    assert "RunWorkflow:RequestWorkflow" in names
    for activity in ("call_model", "safety_review", "execute_steps", "post_review"):
        assert f"RunActivity:{activity}" in names, names
