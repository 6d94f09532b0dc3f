"""The model-call activity: one streamed, schema-constrained answer for a role, with fallbacks."""

from __future__ import annotations

import asyncio
import contextlib

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.live import LiveWriter
from activities.llm_client import ModelError, StreamResult, stream_chat
from activities.redact import redact
from models.config import llm_api_key
from models.request import ModelCallInput, ModelCallOutput, ModelUsage
from models.schemas import json_schema

HEARTBEAT_EVERY_S = 2.0


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


async def _heartbeat_forever(progress: list[int]) -> None:
    # A model can think for a long time before its first token; the heartbeat proves the worker lives.
    while True:
        activity.heartbeat({"chunks": progress[0]})
        await asyncio.sleep(HEARTBEAT_EVERY_S)


async def stream_answer(inp: ModelCallInput) -> ModelCallOutput:
    """Try the role's models in order; a missing model moves on to the next, anything else raises."""
    llm = inp.settings.llm
    live = LiveWriter(inp.settings, inp.stream_key)
    progress = [0]
    beat = asyncio.create_task(_heartbeat_forever(progress)) if activity.in_activity() else None

    def on_token(text: str) -> None:
        progress[0] += 1
        live.token(text)

    messages = [m.model_dump() for m in inp.messages]
    missing: list[str] = []
    try:
        for model in llm.models_for(inp.role):
            live.event("model_start", role=inp.role, model=model, schema=inp.schema_name)
            try:
                result = await stream_chat(
                    llm, model, messages, inp.schema_name, json_schema(inp.schema_name), on_token, llm_api_key()
                )
            except ModelError as exc:
                if exc.kind == "ModelNotFound":
                    missing.append(str(exc))
                    continue
                live.event("model_error", role=inp.role, model=model, message=redact(str(exc)))
                raise
            usage = usage_of(inp.role, result)
            live.event("model_end", role=inp.role, usage=usage.model_dump())
            return ModelCallOutput(text=result.text, usage=usage, truncated=result.truncated)
        raise ModelError("; ".join(missing), kind="ModelNotFound", retryable=False)
    finally:
        live.close()
        if beat:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat


@activity.defn
async def call_model(inp: ModelCallInput) -> ModelCallOutput:
    try:
        return await stream_answer(inp)
    except ModelError as exc:
        raise ApplicationError(str(exc), type=exc.kind, non_retryable=not exc.retryable) from None
