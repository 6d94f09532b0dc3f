"""The model-call activity: one streamed, schema-constrained answer for a role, with fallbacks."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import HEARTBEAT_EVERY_S
from activities.live import LivePublisher
from activities.llm_client import ModelError, StreamResult, stream_chat
from activities.redact import redact
from models.config import LLMSettings, llm_api_key
from models.events import ModelEnded, ModelFailed, ModelStarted
from models.request import ModelCallInput, ModelCallOutput, ModelUsage
from models.schemas import json_schema

LOUD_ATTEMPTS = 3


def usage_of(role: str, result: StreamResult) -> ModelUsage:
    rate = result.completion_tokens / result.duration_s if result.duration_s > 0 else 0.0
    return ModelUsage(
        role=role,
        model=result.model,
        host=result.host,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        duration_s=round(result.duration_s, 3),
        tokens_per_s=round(rate, 1),
        done_reason=result.done_reason,
    )


class Progress:
    """When the model last sent something. The heartbeat carries it (``iter status`` shows a stall as
    it happens); a stream that sends nothing for too long is stopped: a model call ends on lack of
    progress, never on the length of a long answer that keeps coming."""

    def __init__(self, llm: LLMSettings) -> None:
        self.first_token_s, self.idle_s = llm.first_token_timeout_s, llm.idle_timeout_s
        self.chunks = 0
        self.last = time.monotonic()

    def token(self) -> None:
        self.chunks += 1
        self.last = time.monotonic()

    def restart(self) -> None:
        """A new model (a fallback) starts reading the prompt."""
        self.chunks, self.last = 0, time.monotonic()

    def silent_s(self) -> float:
        return time.monotonic() - self.last

    def limit_s(self) -> float:
        return self.idle_s if self.chunks else self.first_token_s

    def details(self) -> dict[str, float | int]:
        return {"chunks": self.chunks, "silent_s": round(self.silent_s(), 1), "limit_s": self.limit_s()}


def stalled_message(silent_s: float, chunks: int) -> str:
    before = "before its first token" if not chunks else f"after {chunks} chunk(s)"
    return f"the model has sent nothing for {silent_s:.0f} s ({before}); retrying"


async def _watch(progress: Progress, live: LivePublisher) -> None:
    """Heartbeats while the call lives (with the answer's tail: ``LivePublisher.heartbeat``);
    returns when the stream has stalled."""
    while progress.silent_s() < progress.limit_s():
        live.heartbeat(progress.details())
        await asyncio.sleep(min(HEARTBEAT_EVERY_S, max(progress.limit_s() - progress.silent_s(), 0.05)))


async def _until_stalled(progress: Progress, call: Awaitable[StreamResult], live: LivePublisher) -> StreamResult:
    stream = asyncio.ensure_future(call)
    watch = asyncio.ensure_future(_watch(progress, live))
    try:
        await asyncio.wait([stream, watch], return_when=asyncio.FIRST_COMPLETED)
        if stream.done():
            return stream.result()
        raise ModelError(stalled_message(progress.silent_s(), progress.chunks), kind="ModelStalled", retryable=True)
    finally:
        for task in (stream, watch):
            task.cancel()
        for task in (stream, watch):
            with contextlib.suppress(asyncio.CancelledError, ModelError):
                await task


class _AnswerTooLong(Exception):
    """Raised from the token callback: the stream stops reading there."""


def cut_answer(pieces: list[str], cap: int) -> str:
    text = "".join(pieces).encode()[:cap].decode(errors="ignore")
    return text


async def stream_answer(inp: ModelCallInput) -> ModelCallOutput:
    """Try the role's models in order; a missing model moves on to the next, anything else raises.

    Tokens go to the workflow's event stream as they come. An answer is cut off at
    ``bounds.max_answer_bytes`` (and marked truncated, so it is invalid): bad model output stays
    bounded before it reaches history."""
    async with LivePublisher() as live:
        return await _try_models(inp, live)


def _loud_attempt() -> bool:
    """Whether this attempt's failure goes to the live view: the first few, then every 16th. An
    activity's retries add nothing to history; a signal per retry would, for as long as a model
    server stays down (``iter orchestrate`` says "waiting: ..." from the pending attempt anyway)."""
    attempt = activity.info().attempt if activity.in_activity() else 1
    return attempt <= LOUD_ATTEMPTS or attempt % 16 == 0


async def _try_models(inp: ModelCallInput, live: LivePublisher) -> ModelCallOutput:
    llm = inp.settings.llm
    cap = inp.settings.bounds.max_answer_bytes
    progress = Progress(llm)
    pieces: list[str] = []
    size = [0]

    def on_token(text: str) -> None:
        progress.token()
        live.token(inp.role, text)
        pieces.append(text)
        size[0] += len(text.encode())
        if size[0] > cap:
            raise _AnswerTooLong

    messages = [m.model_dump() for m in inp.messages]
    missing: list[str] = []
    loud = _loud_attempt()
    for model in llm.models_for(inp.role):
        started = ModelStarted(role=inp.role, model=model, schema_name=inp.schema_name, repair=inp.repair)
        if loud:
            live.event(started)
        else:
            live.before_first_token(started)
        progress.restart()
        pieces.clear()
        size[0] = 0
        began = time.monotonic()
        try:
            result = await _until_stalled(
                progress,
                stream_chat(
                    llm, model, messages, inp.schema_name, json_schema(inp.schema_name), on_token, llm_api_key()
                ),
                live,
            )
        except _AnswerTooLong:
            usage = ModelUsage(
                role=inp.role,
                model=model,
                host=llm.base_url,
                completion_tokens=progress.chunks,
                duration_s=round(time.monotonic() - began, 3),
                done_reason=f"cut off at {cap} bytes",
            )
            live.event(ModelEnded(role=inp.role, usage=usage))
            return ModelCallOutput(text=cut_answer(pieces, cap), usage=usage, truncated=True)
        except ModelError as exc:
            if exc.kind == "ModelNotFound":
                missing.append(str(exc))
                continue
            if loud:
                live.event(ModelFailed(role=inp.role, model=model, message=redact(str(exc))))
            raise
        usage = usage_of(inp.role, result)
        live.event(ModelEnded(role=inp.role, usage=usage))
        return ModelCallOutput(text=result.text, usage=usage, truncated=result.truncated)
    raise ModelError("; ".join(missing), kind="ModelNotFound", retryable=False)


@activity.defn
async def call_model(inp: ModelCallInput) -> ModelCallOutput:
    try:
        return await stream_answer(inp)
    except ModelError as exc:
        raise ApplicationError(str(exc), type=exc.kind, non_retryable=not exc.retryable) from None
