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
from models.context_fit import DoesNotFit, fit, window_from
from models.repetition import RepetitionGuard

# What each phase's answer needs at most, capped by llm.max_tokens: a plan or a fix writes whole
# files, a safety review is eight short checks. A small model that loses its way runs to this
# limit, so a limit sized to the phase is also how long a bad answer can cost.
PHASE_MAX_TOKENS = {"plan": 4096, "session_plan": 4096, "file": 4096, "post_review": 3072, "safety_review": 1024}
# The least room for an answer worth asking for; below it the call is refused before it is sent.
PHASE_MIN_TOKENS = {"plan": 512, "session_plan": 512, "file": 512, "post_review": 384, "safety_review": 256}
REPETITION = "repetition"  # done_reason of a stream cut off because it repeated a short pattern


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
        """Cut off, by the length limit or by the repetition guard: never a complete answer."""
        return self.done_reason in ("length", REPETITION)


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
    guard = RepetitionGuard()
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
                if guard.feed(piece):
                    result.done_reason = REPETITION  # closing the stream stops the server's generation
                    result.completion_tokens = result.chunks
                    break
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
    guard = RepetitionGuard()
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
                    if guard.feed(piece):
                        result.done_reason = REPETITION
                if choice.get("finish_reason") and result.done_reason != REPETITION:
                    result.done_reason = choice["finish_reason"]
            if result.done_reason == REPETITION:
                result.completion_tokens = result.chunks  # no usage chunk comes: one token per chunk
                break
            usage = chunk.get("usage")
            if usage:
                result.prompt_tokens = int(usage.get("prompt_tokens", 0))
                result.completion_tokens = int(usage.get("completion_tokens", 0))
    if not finished and not result.done_reason:
        raise ModelError(f"{result.host}: the stream ended before [DONE]", kind="ModelStreamBroken", retryable=True)
    result.text = "".join(parts)
    return result


def build_body(
    settings: LLMSettings,
    model: str,
    messages: list[dict[str, str]],
    schema_name: str,
    schema: dict[str, Any] | None,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """The request body; ``schema`` None asks for free text (a file's code block)."""
    max_tokens = max_tokens or phase_max_tokens(settings, schema_name)
    if settings.provider == "ollama":
        return {
            "model": model,
            "messages": messages,
            "stream": True,
            **({"format": schema} if schema is not None else {}),
            # num_ctx always goes out: Ollama's default silently truncates long prompts.
            "options": {
                "num_ctx": settings.num_ctx,
                "temperature": settings.temperature,
                "num_predict": max_tokens,
            },
        }
    constrained = {"type": "json_schema", "json_schema": {"name": schema_name, "schema": schema, "strict": True}}
    return {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": settings.temperature,
        "max_tokens": max_tokens,
        **({"response_format": constrained} if schema is not None else {}),
    }


def phase_max_tokens(settings: LLMSettings, schema_name: str) -> int:
    return min(settings.max_tokens, PHASE_MAX_TOKENS.get(schema_name, settings.max_tokens))


# --- the server's real context window --------------------------------------------------------------

_WINDOWS: dict[tuple[str, str, int], int] = {}  # (base url, model, configured num_ctx) -> tokens


def props_url(base_url: str) -> str:
    """llama.cpp serves /props beside /v1, not under it."""
    return (base_url[: -len("/v1")] if base_url.endswith("/v1") else base_url) + "/props"


async def context_window(client: httpx.AsyncClient, settings: LLMSettings, model: str) -> int:
    """What the server really gives one request: llama.cpp's ``/props`` ``n_ctx`` (per slot), for
    Ollama the smaller of ``num_ctx`` (always sent) and the model's own length from ``/api/show``,
    else the configured ``llm.num_ctx``. Asked once per server and model per process."""
    base = settings.resolved_base_url()
    key = (base, model, settings.num_ctx)
    if key in _WINDOWS:
        return _WINDOWS[key]
    window = settings.num_ctx
    try:
        if settings.provider == "ollama":
            resp = await client.post(base + "/api/show", json={"model": model}, timeout=10.0)
        else:
            resp = await client.get(props_url(base), timeout=10.0)
        if resp.status_code == 200:
            window = window_from(settings.provider, resp.json(), settings.num_ctx)
    except (httpx.HTTPError, ValueError, TypeError):
        pass  # a server without these endpoints: the configured value is the best we know
    _WINDOWS[key] = window
    return window


async def stream_chat(
    settings: LLMSettings,
    model: str,
    messages: list[dict[str, str]],
    schema_name: str,
    schema: dict[str, Any] | None,
    on_token: OnToken,
    api_key: str = "",
) -> StreamResult:
    """One streamed, schema-constrained chat call. Raises ``ModelError`` on every failure."""
    settings = settings.settings_for(model)  # a model listed in llm.models may live on its own server
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    timeout = httpx.Timeout(settings.request_timeout_s, connect=10.0)
    started = time.monotonic()
    streamer = _stream_ollama if settings.provider == "ollama" else _stream_openai
    try:
        async with httpx.AsyncClient(timeout=timeout, headers=headers, verify=_tls_context()) as client:
            window = await context_window(client, settings, model)
            try:
                fitted = fit(
                    messages, window, phase_max_tokens(settings, schema_name), PHASE_MIN_TOKENS.get(schema_name, 256)
                )
            except DoesNotFit as exc:
                raise ModelError(str(exc), kind="PromptTooLarge", retryable=False) from None
            body = build_body(settings, model, fitted.messages, schema_name, schema, fitted.max_tokens)
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
