"""A model call ends on lack of progress, not on its length: a long answer that keeps coming
completes (each reviewer call has its own budget), a stream that goes quiet is stopped and tried
again, and `iter status` says so while it happens."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from models.config import Settings
from tests import replies as r
from tests.fake_llm import FakeModel, Reply
from tests.pipeline import start
from tests.test_session_control import ITER
from worker import build_worker

PLAN = r.plan(r.write("s1", "notes.txt", "hello\n"), r.verify("s2", "test -f notes.txt"))


def _slow(settings: Settings, **llm: float) -> Settings:
    return settings.model_copy(update={"llm": settings.llm.model_copy(update=llm)})


async def test_a_long_answer_that_keeps_coming_completes(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.chunk_chars = 16
    # Each answer takes several seconds, longer than the old per-call limit (request_timeout_s) and
    # far longer than the idle timeout, but a chunk arrives at least every 0.6 s.
    fake.script("plan", Reply(PLAN, delay_s=0.35))
    fake.script("safety_review", Reply("not json", delay_s=0.6), Reply(r.safety_pass(), delay_s=0.1))
    fake.default("post_review", r.post_pass())
    settings = _slow(settings, idle_timeout_s=1.5, first_token_timeout_s=5, request_timeout_s=3)
    started = asyncio.get_running_loop().time()
    async with build_worker(client, settings):  # the timeouts are the worker's own settings
        handle = await start(client, settings, workspace)
        state = (await asyncio.wait_for(handle.result(), 90)).state
    took = asyncio.get_running_loop().time() - started
    assert state.outcome == "passed", state.error
    assert len(fake.calls("plan")) == 1, f"the plan was asked {len(fake.calls('plan'))} times in {took:.1f} s"
    assert len(fake.calls("safety_review")) == 2  # one repair, in the same activity, each call its own budget
    assert took > 3, f"the answers were not slow ({took:.1f} s): the test proves nothing"


async def test_a_stalled_stream_is_reported_then_stopped_and_retried(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, cli_env: dict[str, str]
) -> None:
    idle = 20.0  # `iter status` has from 5 s (when it starts to report) to 20 s to see it, under load
    fake.script("plan", Reply(PLAN, stall_after=2, stall_s=60), PLAN)
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    settings = _slow(settings, idle_timeout_s=idle)
    async with build_worker(client, settings):  # the idle timeout is the worker's own setting
        await _stall_shown_then_retried(client, settings, workspace, fake, cli_env, idle)


async def _stall_shown_then_retried(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, cli_env: dict[str, str], idle: float
) -> None:
    handle = await start(client, settings, workspace)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    shown = ""
    while "has sent nothing for" not in shown:
        assert loop.time() < deadline, f"`iter status` never reported the stall; last output:\n{shown}"
        out = await asyncio.to_thread(
            subprocess.run, [ITER, "status", handle.id], cwd=workspace, env=cli_env, capture_output=True, text=True
        )
        shown = out.stdout + out.stderr
        await asyncio.sleep(0.5)
    assert "call_model: the model has sent nothing for" in shown
    state = (await asyncio.wait_for(handle.result(), 60)).state
    took = loop.time() - deadline + 60
    assert state.outcome == "passed" and len(fake.calls("plan")) == 2, (
        f"after {took:.0f} s: plan asked {len(fake.calls('plan'))} time(s); usage {state.usage}"
    )
    # A retried attempt is one started event: its attempt number and the failure before it.
    retried = [
        e.activity_task_started_event_attributes
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.attempt > 1
    ]
    assert [(a.attempt, a.last_failure.message) for a in retried] == [
        (2, f"the model has sent nothing for {idle:.0f} s (after 2 chunk(s)); retrying")
    ]
