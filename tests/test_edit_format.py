"""The edit action: search/replace blocks for large files, applied to the file as it is when the
step runs; a block that does not match exactly once fails the step and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.client import Client

from models.config import Settings
from models.edits import EditError, apply_blocks
from models.plan import FileStep
from tests import replies as r
from tests.fake_llm import FakeModel
from tests.pipeline import run_request


def block(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def test_blocks_apply_in_order_and_must_match_once() -> None:
    text = "a = 1\nb = 2\nc = 3\n"
    assert apply_blocks(text, block("a = 1", "a = 10") + block("c = 3", "c = 30")) == "a = 10\nb = 2\nc = 30\n"
    with pytest.raises(EditError, match="block 1: its SEARCH text does not occur"):
        apply_blocks(text, block("z = 9", "z = 0"))
    with pytest.raises(EditError, match="occurs 2 times"):
        apply_blocks("x\nx\n", block("x", "y"))


def test_an_edit_step_without_blocks_is_an_invalid_plan() -> None:
    with pytest.raises(ValidationError, match="at least one"):
        FileStep(id="s1", type="file", path="a.py", action="edit", content="a = 10")


@pytest.mark.usefixtures("worker")
async def test_edit_step_changes_only_its_lines(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    ops = workspace / "src/calc/ops.py"
    before = ops.read_text()
    first_line = before.splitlines()[0]
    edit = {**r.write("s1", "src/calc/ops.py", block(first_line, first_line + "  # edited")), "action": "edit"}
    fake.script("plan", r.plan(edit, r.verify("s2")))
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    assert ops.read_text() == before.replace(first_line, first_line + "  # edited", 1)
    assert state.results[0].file_change == "modified"


@pytest.mark.usefixtures("worker")
async def test_edit_that_does_not_match_fails_the_step_and_leaves_the_file(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    settings.bounds.max_fix_depth = 0
    ops = workspace / "src/calc/ops.py"
    before = ops.read_text()
    edit = {**r.write("s1", "src/calc/ops.py", block("def nowhere():", "def somewhere():")), "action": "edit"}
    fake.script("plan", r.plan(edit, r.verify("s2")))
    fake.script("safety_review", r.safety_pass())
    fake.default("post_review", r.post_fail())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "failed"
    assert ops.read_text() == before
    assert not state.results[0].ok and "SEARCH text does not occur" in state.results[0].output
