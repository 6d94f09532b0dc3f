"""Streaming chat with a JSON-schema-constrained answer, over Ollama's native API or any
OpenAI-compatible server, with httpx. No Temporal here: the activity in ``llm.py`` wraps it."""

from __future__ import annotations

import functools
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import httpx

from models.config import LLMSettings


class ModelError(Exception):
    """A model call failed; ``retryable`` says whether waiting and trying again can help."""

    def __init__(self, message: str, *, kind: str, retryable: bool) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable


@dataclass
class StreamResult:
    text: str
    model: str
    host: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration_s: float = 0.0
    done_reason: str = ""
    chunks: int = field(default=0)

    @property
    def truncated(self) -> bool:
        return self.done_reason == "length"


OnToken = Callable[[str], None]


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every call: building a client loads the CA bundle each time, about
    20 ms of CPU per model call, which 20 concurrent requests on a small machine feel."""
    return httpx.create_ssl_context()


def host_of(base_url: str) -> str:
    return urlparse(base_url).netloc or base_url


def _hint(settings: LLMSettings) -> str:
    if settings.provider == "ollama":
        return "start Ollama (`ollama serve`) or set ITER_LLM_BASE_URL to a server that answers"
    return "start the server or set ITER_LLM_BASE_URL (with /v1) to one that answers"


async def _raise_for_status(resp: httpx.Response, settings: LLMSettings, model: str) -> None:
    if resp.status_code < 400:
        return
    body = (await resp.aread()).decode(errors="replace")[:500]
    where = settings.resolved_base_url()
    if resp.status_code == 404 and ("model" in body.lower() or settings.provider == "ollama"):
        hint = f"; try `ollama pull {model}`" if settings.provider == "ollama" else ""
        raise ModelError(f"model {model!r} does not exist on {where}{hint}", kind="ModelNotFound", retryable=False)
    if resp.status_code in (401, 403):
        raise ModelError(
            f"{where} refused the credentials (HTTP {resp.status_code}); check ITER_LLM_API_KEY",
            kind="ModelAuth",
            retryable=False,
        )
    if resp.status_code == 429 or resp.status_code >= 500:
        raise ModelError(
            f"{where} answered HTTP {resp.status_code} for {model!r}; waiting and retrying",
            kind="ModelServerBusy",
            retryable=True,
        )
    raise ModelError(
        f"{where} rejected the request for {model!r} (HTTP {resp.status_code}): {body}",
        kind="ModelRequestRejected",
        retryable=False,
    )


async def _lines(resp: httpx.Response) -> AsyncIterator[str]:
    async for line in resp.aiter_lines():
        if line.strip():
            yield line


async def _stream_ollama(
    client: httpx.AsyncClient, settings: LLMSettings, model: str, body: dict[str, Any], on_token: OnToken
) -> StreamResult:
    url = settings.resolved_base_url() + "/api/chat"
    result = StreamResult(text="", model=model, host=host_of(settings.resolved_base_url()))
    parts: list[str] = []
    async with client.stream("POST", url, json=body) as resp:
        await _raise_for_status(resp, settings, model)
        async for line in _lines(resp):
            chunk = json.loads(line)
            if "error" in chunk:
                raise ModelError(f"{result.host}: {chunk['error']}", kind="ModelStreamError", retryable=True)
            piece = chunk.get("message", {}).get("content", "")
            if piece:
                parts.append(piece)
                result.chunks += 1
                on_token(piece)
            if chunk.get("done"):
                result.done_reason = chunk.get("done_reason", "stop")
                result.prompt_tokens = int(chunk.get("prompt_eval_count", 0))
                result.completion_tokens = int(chunk.get("eval_count", 0))
                break
        else:
            raise ModelError(
                f"{result.host}: the stream ended before its final chunk", kind="ModelStreamBroken", retryable=True
            )
    result.text = "".join(parts)
    return result


async def _stream_openai(
    client: httpx.AsyncClient, settings: LLMSettings, model: str, body: dict[str, Any], on_token: OnToken
) -> StreamResult:
    url = settings.resolved_base_url() + "/chat/completions"
    result = StreamResult(text="", model=model, host=host_of(settings.resolved_base_url()))
    parts: list[str] = []
    finished = False
    async with client.stream("POST", url, json=body) as resp:
        await _raise_for_status(resp, settings, model)
        async for line in _lines(resp):
            if not line.startswith("data:"):
                continue  # SSE comments and event names carry nothing we need
            data = line[5:].strip()
            if data == "[DONE]":
                finished = True
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise ModelError(f"{result.host}: {chunk['error']}", kind="ModelStreamError", retryable=True)
            for choice in chunk.get("choices") or []:
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece:
                    parts.append(piece)
                    result.chunks += 1
                    on_token(piece)
                if choice.get("finish_reason"):
                    result.done_reason = choice["finish_reason"]
            usage = chunk.get("usage")
            if usage:
                result.prompt_tokens = int(usage.get("prompt_tokens", 0))
                result.completion_tokens = int(usage.get("completion_tokens", 0))
    if not finished and not result.done_reason:
        raise ModelError(f"{result.host}: the stream ended before [DONE]", kind="ModelStreamBroken", retryable=True)
    result.text = "".join(parts)
    return result


def build_body(
    settings: LLMSettings, model: str, messages: list[dict[str, str]], schema_name: str, schema: dict[str, Any]
) -> dict[str, Any]:
    if settings.provider == "ollama":
        return {
            "model": model,
            "messages": messages,
            "stream": True,
            "format": schema,
            # num_ctx always goes out: Ollama's default silently truncates long prompts.
            "options": {
                "num_ctx": settings.num_ctx,
                "temperature": settings.temperature,
                "num_predict": settings.max_tokens,
            },
        }
    return {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "schema": schema, "strict": True},
        },
    }


async def stream_chat(
    settings: LLMSettings,
    model: str,
    messages: list[dict[str, str]],
    schema_name: str,
    schema: dict[str, Any],
    on_token: OnToken,
    api_key: str = "",
) -> StreamResult:
    """One streamed, schema-constrained chat call. Raises ``ModelError`` on every failure."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    timeout = httpx.Timeout(settings.request_timeout_s, connect=10.0)
    body = build_body(settings, model, messages, schema_name, schema)
    started = time.monotonic()
    streamer = _stream_ollama if settings.provider == "ollama" else _stream_openai
    try:
        async with httpx.AsyncClient(timeout=timeout, headers=headers, verify=_tls_context()) as client:
            result = await streamer(client, settings, model, body, on_token)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise ModelError(
            f"no model server answers at {settings.resolved_base_url()} ({settings.provider}): {_hint(settings)}",
            kind="ModelServerUnreachable",
            retryable=True,
        ) from exc
    except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout, httpx.WriteError) as exc:
        raise ModelError(
            f"the stream from {settings.resolved_base_url()} broke ({exc.__class__.__name__}); retrying",
            kind="ModelStreamBroken",
            retryable=True,
        ) from exc
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"{settings.resolved_base_url()} sent a chunk that is not JSON; retrying",
            kind="ModelStreamBroken",
            retryable=True,
        ) from exc
    result.duration_s = time.monotonic() - started
    return result
