"""The model-call activity: one streamed, schema-constrained answer for a role, with fallbacks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.live import LivePublisher
from activities.llm_client import ModelError, StreamResult, stream_chat
from activities.redact import redact
from models.config import llm_api_key
from models.events import ModelEnded, ModelFailed, ModelStarted
from models.request import ModelCallInput, ModelCallOutput, ModelUsage
from models.schemas import json_schema

HEARTBEAT_EVERY_S = 2.0
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


async def _heartbeat_forever(progress: list[int]) -> None:
    # A model can think for a long time before its first token; the heartbeat proves the worker lives.
    while True:
        activity.heartbeat({"chunks": progress[0]})
        await asyncio.sleep(HEARTBEAT_EVERY_S)


async def stream_answer(inp: ModelCallInput) -> ModelCallOutput:
    """Try the role's models in order; a missing model moves on to the next, anything else raises.
    Tokens go to the workflow's event stream as they come."""
    progress = [0]
    beat = asyncio.create_task(_heartbeat_forever(progress)) if activity.in_activity() else None
    async with LivePublisher() as live:

        def on_token(text: str) -> None:
            progress[0] += 1
            live.token(inp.role, text)

        try:
            return await _try_models(inp, live, on_token)
        finally:
            if beat:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat


def _loud_attempt() -> bool:
    """Whether this attempt's failure goes to the live view: the first few, then every 16th. An
    activity's retries add nothing to history; a signal per retry would, for as long as a model
    server stays down (``iter orchestrate`` says "waiting: ..." from the pending attempt anyway)."""
    attempt = activity.info().attempt if activity.in_activity() else 1
    return attempt <= LOUD_ATTEMPTS or attempt % 16 == 0


async def _try_models(inp: ModelCallInput, live: LivePublisher, on_token: Callable[[str], None]) -> ModelCallOutput:
    llm = inp.settings.llm
    messages = [m.model_dump() for m in inp.messages]
    missing: list[str] = []
    loud = _loud_attempt()
    for model in llm.models_for(inp.role):
        started = ModelStarted(role=inp.role, model=model, schema_name=inp.schema_name)
        if loud:
            live.event(started)
        else:
            live.before_first_token(started)
        try:
            result = await stream_chat(
                llm, model, messages, inp.schema_name, json_schema(inp.schema_name), on_token, llm_api_key()
            )
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
