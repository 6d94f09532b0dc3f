"""The compact progress query viewers poll: the same keys as the state, a fraction of its size,
and it grows with the plan, not with the outputs of the steps or the number of rounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import Client

from models.config import Settings
from tests import replies as r
from tests.fake_llm import FakeModel
from tests.pipeline import start

pytestmark = pytest.mark.usefixtures("worker")

BIG_FILE = "".join(f"x{i} = {i * 7919 % 100_003}\n" for i in range(700))  # 10 KB: progress lists the step only
NOISY = "python -c \"print('line of output ' * 2000)\""  # 32 KB of output, twice (the check re-runs)


async def test_progress_is_the_state_without_outputs_or_contents(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    fake.script(
        "plan",
        r.plan(r.write("s1", "src/calc/big.py", BIG_FILE), r.verify("s2", NOISY + " && exit 1")),
    )
    fake.default("safety_review", r.safety_pass())
    fake.script("post_review", r.post_fail(r.run("fix", "true")))
    fake.default("post_review", r.post_fail(r.run("fix2", "true")))
    settings.bounds.max_fix_depth = 1

    handle = await start(client, settings, workspace)
    final = (await handle.result()).state
    state = await handle.query("status")
    progress = await handle.query("progress")

    assert final.outcome == "failed" and len(final.results) >= 3, final.error
    assert progress["outcome"] == state["outcome"] == "failed"
    assert progress["phase"] == state["phase"] == "done"
    assert progress["steps_run"] == len(state["results"]) and progress["model_calls"] == len(state["usage"])
    ids = [node["step"]["id"] for node in progress["tree"]]
    assert ids[:2] == ["s1", "s2"] and "f1-fix" in ids  # the fix step too, flattened with its depth
    assert "content" not in progress["tree"][0]["step"]
    whole, compact = len(json.dumps(state)), len(json.dumps(progress))
    assert whole > 60_000 and compact < 6_000, (whole, compact)


async def test_the_post_review_gets_each_steps_output_once(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    """A re-run check supersedes its earlier run: the reviewer's input carries only the last output."""
    fake.script("plan", r.plan(r.verify("s1", NOISY + " && exit 1")))
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_fail(r.run("fix", "true")))
    settings.bounds.max_fix_depth = 2

    handle = await start(client, settings, workspace)
    await handle.result()

    inputs = []
    async for event in handle.fetch_history_events():
        attrs = event.activity_task_scheduled_event_attributes
        if event.HasField("activity_task_scheduled_event_attributes") and attrs.activity_type.name == "post_review":
            inputs.append(json.loads(attrs.input.payloads[0].data))
    assert len(inputs) == 3  # the plan's round and two fix rounds
    last = inputs[-1]["results"]
    assert [res["step_id"] for res in last].count("s1") == 3
    with_output = [res for res in last if res["output"]]
    assert [res["run_key"] for res in with_output if res["step_id"] == "s1"] == ["r2-s1"]
    assert len(json.dumps(inputs[-1])) < len(json.dumps(inputs[0])) + 5_000  # no growth per round
