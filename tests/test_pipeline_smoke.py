from __future__ import annotations

from pathlib import Path

from temporalio.client import Client

from models.config import Settings
from models.request import RequestInput, RequestResult
from tests import replies as r
from tests.conftest import example_project
from tests.fake_llm import FakeModel
from workflows.request import RequestWorkflow


async def test_pass_first_time_applies_plan(client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None) -> None:
    fake.script("plan", r.plan(r.write("s1", "src/calc/ops.py", r.MULTIPLY, "append"), r.write("s2", "tests/test_mul.py", r.MULTIPLY_TEST), r.verify("s3")))
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())
    inp = RequestInput(project=example_project(), request_id="req_01", workspace=str(workspace), settings=settings)
    result: RequestResult = await client.execute_workflow(RequestWorkflow.run, inp, id="iter-calc-req_01-smoke", task_queue=settings.temporal.task_queue)
    state = result.state
    assert state.outcome == "passed", state.error
    assert "def multiply" in (workspace / "src/calc/ops.py").read_text()
    assert [x.ok for x in state.results] == [True, True, True]
