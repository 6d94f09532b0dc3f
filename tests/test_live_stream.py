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
from models.request import ModelUsage
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
    own = [i.offset for i in items if not i.from_heartbeat]  # heartbeat tokens have no offset of their own
    assert offsets == sorted(offsets) and len(set(own)) == len(own)
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


async def test_tokens_reach_a_reader_from_the_heartbeat_before_the_stream_and_each_once(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    """The fast lane: a slow answer's tokens come from the model call's heartbeat (no history)
    while the stream carries them about once a second; the reader shows every character once."""
    fake.script("plan", PLAN)
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())
    fake.token_delay_s = 0.06  # the plan alone streams for about four seconds

    handle = await start(client, settings, workspace)
    items = await asyncio.wait_for(collect(client, handle.id), 120)
    await handle.result()

    events = [i.event for i in items]
    starts = [i for i, e in enumerate(events) if isinstance(e, ModelStarted)]
    tokens = [i for i in items[starts[0] : starts[1]] if isinstance(i.event, Tokens)]
    assert json.loads("".join(i.event.text for i in tokens)) == PLAN  # type: ignore[union-attr]
    fast = [i for i in tokens if i.from_heartbeat]
    assert len(fast) >= 3, f"{len(fast)} of {len(tokens)} token items came from the heartbeat"
    # The stream itself carried the plan in about one signal a second, not one per 0.1 s.
    streamed_s = len(json.dumps(PLAN)) / fake.chunk_chars * fake.token_delay_s  # how long the plan streamed
    stream_items = [i for i in tokens if not i.from_heartbeat]
    assert streamed_s > 3 and len(stream_items) <= streamed_s + 3, (streamed_s, len(stream_items))


def test_the_token_lane_shows_every_character_once_in_order() -> None:
    from models.events import LiveTail
    from temporal.events import TokenLane

    lane = TokenLane()
    assert lane.follow(ModelStarted(role="coder", model="m", schema_name="plan")) is not None and lane.open == 1
    first = lane.from_tail(LiveTail(call="c", role="coder", chars=5, tail="hello"))
    assert first is not None and first.text == "hello"
    assert lane.from_tail(LiveTail(call="c", role="coder", chars=5, tail="hello")) is None  # nothing new
    # The stream's own item covers what the heartbeat showed and a little more: only the rest.
    rest = lane.follow(Tokens(role="coder", text="hello wo", call="c", at=0))
    assert isinstance(rest, Tokens) and rest.text == " wo" and rest.at == 5
    assert lane.follow(Tokens(role="coder", text="hel", call="c", at=0)) is None
    # A tail that no longer reaches back to what was shown: the stream fills the gap first.
    assert lane.from_tail(LiveTail(call="c", role="coder", chars=20, tail="0123456789")) is None
    gap = lane.follow(Tokens(role="coder", text="rld, and so", call="c", at=8))
    assert isinstance(gap, Tokens) and gap.text == "rld, and so"
    late = lane.from_tail(LiveTail(call="c", role="coder", chars=22, tail=" so on"))  # "hello world, and so on"
    assert isinstance(late, Tokens) and late.text == " on"
    assert lane.follow(ModelEnded(role="coder", usage=ModelUsage(role="coder", model="m", host="h"))) is not None
    assert lane.open == 0
