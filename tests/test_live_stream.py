"""The event stream, end to end: a real request workflow on the dev server, the fake model server
streaming its answers, and a reader that reaches the stream only through Temporal."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

from models.config import Settings
from models.events import (
    MAX_RETAINED,
    Finished,
    ModelEnded,
    ModelStarted,
    Notice,
    OutputLines,
    PhaseChanged,
    StepFinished,
    StepStarted,
    Tokens,
    VerdictGiven,
)
from temporal.events import StreamItem, end_offset, subscribe
from tests import replies as r
from tests.fake_llm import FakeModel
from tests.pipeline import start
from workflows.live import LiveStream

pytestmark = pytest.mark.usefixtures("worker")

PLAN = r.plan(
    r.write("s1", "src/calc/ops.py", r.MULTIPLY, "append"),
    r.write("s2", "tests/test_mul.py", r.MULTIPLY_TEST),
    r.run("s3", "echo first line; echo 'sk-live' > /dev/null; echo second line"),
    r.verify("s4"),
)


async def collect(client: Client, workflow_id: str, **kw: object) -> list[StreamItem]:
    return [item async for item in subscribe(client, workflow_id, **kw)]  # type: ignore[arg-type]


async def test_a_request_streams_its_whole_story(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.script("plan", PLAN)
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())
    fake.token_delay_s = 0.002

    handle = await start(client, settings, workspace)
    items = await asyncio.wait_for(collect(client, handle.id), 60)
    state = (await handle.result()).state

    assert state.outcome == "passed", state.error
    events = [i.event for i in items]
    offsets = [i.offset for i in items]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    phases = [e.phase for e in events if isinstance(e, PhaseChanged)]
    story = [p for p in phases if p in ("prompt", "stream", "parse", "review", "execute", "verify", "done")]
    assert story[:3] == ["prompt", "stream", "parse"] and "execute" in story and phases[-1] == "done", phases
    # The coder's answer arrives token by token, coalesced, and adds up to the answer in history.
    starts = [e for e in events if isinstance(e, ModelStarted)]
    assert [(s.role, s.schema_name) for s in starts] == [
        ("coder", "plan"),
        ("coder", "file"),  # each file of the plan, written on its own
        ("coder", "file"),
        ("reviewer", "safety_review"),
        ("reviewer", "post_review"),
    ]
    first_call = events[events.index(starts[0]) : events.index(starts[1])]
    text = "".join(e.text for e in first_call if isinstance(e, Tokens))
    assert json.loads(text) == PLAN
    assert sum(isinstance(e, ModelEnded) for e in events) == 5
    # Steps: started, their output lines while they run, finished.
    assert [e.step_id for e in events if isinstance(e, StepStarted)] == ["s1", "s2", "s3", "s4"]
    lines = [line for e in events if isinstance(e, OutputLines) and e.ref == "r0-s3" for line in e.lines]
    assert lines == ["first line", "second line"]
    assert [(e.step_id, e.ok) for e in events if isinstance(e, StepFinished)] == [
        ("s1", True),
        ("s2", True),
        ("s3", True),
        ("s4", True),
    ]
    verdicts = [e for e in events if isinstance(e, VerdictGiven)]
    assert [(v.stage, v.verdict) for v in verdicts] == [("safety", "PASS"), ("verify", "PASS")]
    assert len(verdicts[0].checks) == 8 and all(c.ok for c in verdicts[0].checks)
    assert isinstance(events[-1], Finished) and events[-1].outcome == "passed"


async def test_a_reader_can_skip_tokens_and_resume_from_an_offset(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.script("plan", PLAN)
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())

    handle = await start(client, settings, workspace)
    await handle.result()
    everything = await collect(client, handle.id)
    quiet = await collect(client, handle.id, tokens=False, output=False)
    assert not any(isinstance(i.event, (Tokens, OutputLines)) for i in quiet)
    assert [i.offset for i in quiet] == [i.offset for i in everything if not isinstance(i.event, (Tokens, OutputLines))]
    middle = everything[len(everything) // 2].offset
    resumed = await collect(client, handle.id, from_offset=middle)
    assert [i.offset for i in resumed] == [i.offset for i in everything if i.offset >= middle]
    assert await end_offset(client, handle.id) == everything[-1].offset + 1


@workflow.defn(sandboxed=False)
class ChattyWorkflow:
    """Publishes more events than the stream retains."""

    def __init__(self) -> None:
        self.live = LiveStream()

    @workflow.run
    async def run(self, n: int) -> None:
        for i in range(n):
            self.live.publish(PhaseChanged(phase="execute", message=f"event {i}"))
        self.live.publish(Finished(outcome="passed"))


async def test_the_stream_keeps_a_bounded_tail_and_says_what_a_reader_missed(client: Client) -> None:
    n = MAX_RETAINED + 500
    queue = f"chatty-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[ChattyWorkflow]):
        handle = await client.start_workflow(
            ChattyWorkflow.run, n, id=f"chatty-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        await handle.result()
        items = await collect(client, handle.id)
    notice, *rest = items
    assert isinstance(notice.event, Notice) and "dropped" in notice.event.message
    assert len(rest) <= MAX_RETAINED
    assert isinstance(rest[-1].event, Finished) and rest[-1].offset == n
    assert rest[-2].event == PhaseChanged(phase="execute", message=f"event {n - 1}")
    assert [i.offset for i in rest] == list(range(rest[0].offset, n + 1))
