"""Timeouts and retry policies shared by the workflows, as named constants and small builders."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from models.config import Settings
from models.queues import queue_name

# A dead worker is noticed within one heartbeat timeout; activities heartbeat every 2 s.
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
PROMPT_TIMEOUT = timedelta(seconds=30)
EVIDENCE_TIMEOUT = timedelta(minutes=10)
CLEANUP_TIMEOUT = timedelta(minutes=2)
WORKSPACE_TIMEOUT = timedelta(minutes=10)  # a worktree of a large checkout takes a while to write
STEP_MARGIN_S = 60
FAST_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=10
)
CLEANUP_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5)
# Step execution never runs out of attempts: a retried attempt adopts the step's process instead of
# starting it again, the heartbeat timeout notices a dead worker, and an outage (Docker away) is
# waited out. Counting attempts would end a request while its step still runs.
EXECUTE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=0
)


def model_retry(settings: Settings) -> RetryPolicy:
    """Model servers come and go: wait for them without limit, with backoff, while the UI says why."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=settings.retry.initial_interval_s),
        maximum_interval=timedelta(seconds=settings.retry.max_interval_s),
        backoff_coefficient=2.0,
        maximum_attempts=0,
    )


# A model call ends on lack of progress, never on its length: the activity stops a stream that
# sends nothing for ``llm.idle_timeout_s`` (``first_token_timeout_s`` before the first token) and a
# dead worker is noticed within HEARTBEAT_TIMEOUT. This is only a backstop for a runaway answer.
MODEL_CALL_BACKSTOP = timedelta(hours=24)


def llm_queue() -> str:
    """Where model calls go: the workflow's own queue with ``-llm`` (models/queues.py)."""
    return queue_name(workflow.info().task_queue, "llm")


def exec_queue() -> str:
    """Where steps and evidence commands run: the workflow's own queue with ``-exec``."""
    return queue_name(workflow.info().task_queue, "exec")


def model_call(settings: Settings) -> dict[str, Any]:
    """The options of every activity that waits on a model: the call itself and both reviews. Each
    model call inside a review (the reviewer's repairs) has its own no-progress budget."""
    return {
        "task_queue": llm_queue(),
        "start_to_close_timeout": MODEL_CALL_BACKSTOP,
        "heartbeat_timeout": HEARTBEAT_TIMEOUT,
        "retry_policy": model_retry(settings),
    }


def execution_timeout(settings: Settings, timeouts: list[int | None]) -> timedelta:
    total = sum(t or settings.executor.step_timeout_s for t in timeouts)
    return timedelta(seconds=total + STEP_MARGIN_S)
