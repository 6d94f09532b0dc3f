"""Every committed history (tests/histories/, recorded by scripts/record_histories.py) replays
against today's workflow code without nondeterminism: a workflow change that would strand
running requests or sessions after an upgrade fails the suite. docs/versioning.md has the rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from models.request import RequestInput, RequestResult
from worker import WORKFLOWS
from workflows.request import RequestWorkflow

HISTORIES = Path(__file__).parent / "histories"
# The paths the histories must cover; a missing one means the recording script lost it.
PATHS = (
    "request_pass",
    "request_fail_then_fixed",
    "request_fail_fixed_by_the_coder",
    "request_pass_overruled_twice",
    "request_info_needed",
    "request_block_replanned",
    "request_blocked",
    "request_cancel",
    "session_continue_as_new_with_updates",
    "session_blocked_three_times",
    "session_cancel",
)


def histories() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_every_path_has_a_committed_history() -> None:
    names = {p.stem.split(".")[0] for p in histories()}
    missing = [p for p in PATHS if not any(n == p or n.endswith("-" + p) for n in names)]
    assert not missing, f"no history for {missing}; run scripts/record_histories.py --only {' '.join(missing)}"
    runs = [p for p in histories() if "session_continue_as_new_with_updates.run" in p.name]
    assert len(runs) >= 2, "the continue-as-new history has a single run"


@pytest.mark.parametrize("path", histories(), ids=lambda p: p.stem)
async def test_history_replays_without_nondeterminism(path: Path) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(load(path))  # raises on any nondeterminism


@workflow.defn(name="RequestWorkflow", sandboxed=False)
class ChangedRequestWorkflow(RequestWorkflow):
    """Today's request workflow with one unguarded change: a timer before the work, as a careless
    edit would add. Only here, to prove the replay test catches such a change."""

    @workflow.run
    async def run(self, inp: RequestInput) -> RequestResult:
        await workflow.sleep(0.01)
        return await super().run(inp)


async def test_an_unguarded_change_fails_the_replay() -> None:
    replayer = Replayer(
        workflows=[ChangedRequestWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    with pytest.raises(workflow.NondeterminismError, match=r"[Nn]ondeterminism|TMPRL1100"):
        await replayer.replay_workflow(load(HISTORIES / "request_pass.json"))
