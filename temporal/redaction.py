"""Masks secrets in the failures activities report, before they reach history.

A failure's message is written to the workflow history (a retried attempt's in the next
ActivityTaskStarted event, the last one in ActivityTaskFailed) and from there into the request's
own failure message. Whatever an activity raises, an echoed API key or the value of a secret
variable leaves it masked: one worker interceptor covers every activity."""

from __future__ import annotations

from typing import Any

from temporalio.exceptions import ApplicationError, TemporalError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from activities.redact import redact


class RedactFailures(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _MaskingInbound(next)


class _MaskingInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await self.next.execute_activity(input)
        except ApplicationError as exc:
            details = [redact(d) if isinstance(d, str) else d for d in exc.details]
            if redact(exc.message) == exc.message and details == list(exc.details):
                raise
            raise ApplicationError(
                redact(exc.message),
                *details,
                type=exc.type,
                non_retryable=exc.non_retryable,
                next_retry_delay=exc.next_retry_delay,
                category=exc.category,
            ) from None
        except TemporalError:
            raise  # the SDK's own signals (cancellation, async completion) carry no text of ours
        except Exception as exc:
            text = str(exc)
            if redact(text) == text:
                raise
            # Same type name and retry behaviour as the original, without its text or its cause.
            raise ApplicationError(redact(text), type=type(exc).__name__) from None
