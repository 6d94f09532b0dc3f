"""The Temporal web UI tells the story: a request started by `iter orchestrate` has its description
as the workflow's summary, its criteria as details, markdown current details with the verdicts,
and a summary on every activity it ran."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from tests import replies as r
from tests.cli import iter_cmd, setup_project
from tests.fake_llm import FakeModel

pytestmark = pytest.mark.usefixtures("thread_worker")

PLAN = r.plan(r.write("s1", "src/calc/ops.py", r.MULTIPLY, "append"), r.verify("s2"))


PATCH = "core_patch"  # the marker workflow.patched records: a version mark, not an activity


async def test_a_request_explains_itself_in_the_web_ui(
    client: Client, workspace: Path, cli_env: dict[str, str], fake: FakeModel
) -> None:
    fake.default("plan", PLAN)
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    wid = setup_project(workspace, cli_env)

    done = iter_cmd(workspace, cli_env, "orchestrate", "--request", "req_01", "--detach")
    assert done.returncode == 0, done.stderr
    handle = client.get_workflow_handle(wid)
    await handle.result()

    desc = await handle.describe()
    assert await desc.static_summary() == "req_01: Add multiply"
    assert "multiply(3, 4) == 12" in (await desc.static_details() or "")
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    details = meta.current_details
    assert details.startswith("**done**"), details
    assert "**last safety verdict:** PASS (8/8 checks)" in details, details
    assert "**last verify verdict:** PASS" in details, details
    assert "> Add multiply" in details
    scheduled = [
        e
        async for e in handle.fetch_history_events()
        if e.HasField("activity_task_scheduled_event_attributes")
        or (e.HasField("marker_recorded_event_attributes") and e.marker_recorded_event_attributes.marker_name != PATCH)
    ]
    assert scheduled
    summaries = [json.loads(e.user_metadata.summary.data or b'""') for e in scheduled]
    assert all(summaries), summaries  # every activity, local ones too (a patch marker is none), says what it does
    assert any("8-point safety review of 3 step(s)" in s for s in summaries), summaries  # with the criterion
