"""One way to reach Temporal for the CLI, the worker and the tests."""

from __future__ import annotations

import os
from collections.abc import Callable

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client, TLSConfig
from temporalio.service import RPCError

from models import search
from models.config import Settings
from temporal import devserver
from temporal.payloads import data_converter
from temporal.tracing import tracing_interceptors


class TemporalUnavailable(RuntimeError):
    pass


def target(settings: Settings) -> str:
    return settings.temporal.address or f"{devserver.DEV_HOST}:{devserver.DEV_PORT}"


def _tls(settings: Settings) -> TLSConfig | bool:
    t = settings.temporal
    if t.tls_cert and t.tls_key:
        with open(t.tls_cert, "rb") as cert, open(t.tls_key, "rb") as key:
            return TLSConfig(client_cert=cert.read(), client_private_key=key.read())
    return t.tls


async def connect(settings: Settings, *, start_server: bool = True, say: Callable[[str], None] = print) -> Client:
    """Connect to the configured cluster, or to the embedded dev server, starting it if allowed."""
    embedded = not settings.temporal.address
    if embedded and not devserver.port_open(devserver.DEV_HOST, devserver.DEV_PORT):
        if not start_server:
            raise TemporalUnavailable(
                f"no Temporal server at {target(settings)}; run `iter server` or set ITER_TEMPORAL_ADDRESS"
            )
        log = devserver.start_background(settings)
        say(
            f"Started the Temporal dev server at {target(settings)} "
            f"(web UI http://localhost:{settings.temporal.ui_port}, data {devserver.db_path(settings)}, log {log})"
        )
    api_key = os.environ.get("ITER_TEMPORAL_API_KEY") or None
    try:
        client = await Client.connect(
            target(settings),
            namespace=settings.temporal.namespace,
            data_converter=data_converter(settings),  # large values by reference (payloads.py)
            tls=_tls(settings) if not embedded else False,
            api_key=api_key,
            interceptors=tracing_interceptors(),  # a client's interceptors reach its workers too
        )
    except RuntimeError as exc:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {target(settings)} ({exc}); check ITER_TEMPORAL_ADDRESS and TLS settings"
        ) from exc
    return client


async def ensure_search_attributes(client: Client) -> None:
    """Register iter's search attributes if the cluster lacks them (idempotent)."""
    ns = client.namespace
    try:
        existing = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=ns))
        missing = {k.name for k in search.ALL} - set(existing.custom_attributes)
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=ns,
                    search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing},
                )
            )
    except RPCError as exc:
        # Cloud namespaces manage attributes elsewhere; say so once instead of failing every workflow.
        raise TemporalUnavailable(
            f"cannot register search attributes {', '.join(k.name for k in search.ALL)} in namespace {ns}: "
            f"{exc.message}; add them as Keyword attributes in your cluster"
        ) from exc
