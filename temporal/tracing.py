"""OpenTelemetry spans for every workflow and activity, when the user asks for them.

Standard OpenTelemetry settings turn it on: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (spans go to a
collector over OTLP/HTTP) or ``ITER_OTEL=console`` (spans printed, for a quick look). Without
either, iter adds no interceptor and pays nothing."""

from __future__ import annotations

import os
from typing import Any

from temporalio.client import Interceptor

SERVICE_NAME = "iter"


def tracing_interceptors(env: dict[str, str] | None = None) -> list[Any]:
    env = dict(os.environ) if env is None else env
    if not (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("ITER_OTEL")):
        return []
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError as exc:
        raise RuntimeError(
            f"tracing was asked for but OpenTelemetry is missing ({exc.name}); install iter[otel]"
        ) from None
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
        if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
    interceptor: Interceptor = TracingInterceptor()
    return [interceptor]
