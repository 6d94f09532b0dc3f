"""Plan, then write: the plan names the files and the checks, and each file's code is asked for
on its own, as a code block (models/writing.py). What a model put into the plan's content is not
what lands: the written answer is."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import Client

from activities.llm_client import build_body
from models import writing
from models.config import LLMSettings, Settings
from models.plan import Plan
from tests import replies as r
from tests.fake_llm import FakeModel
from tests.pipeline import run_request

STUB = "def multiply(a: float, b: float) -> float:\n    pass\n"  # what a small model copies into its plan
CODE = "def multiply(a: float, b: float) -> float:\n    return a * b\n"
TEST = "from calc.mul import multiply\n\n\ndef test_multiply() -> None:\n    assert multiply(3, 4) == 12\n"


def _plan(*steps: dict[str, object]) -> Plan:
    return Plan.model_validate(r.plan(*steps))


def test_the_code_is_the_longest_fenced_block_or_the_whole_answer() -> None:
    answer = f"Here it is:\n```python\nx = 1\n```\nand the file:\n```python\n{CODE}```\nDone."
    assert writing.written_content(answer) == CODE
    assert writing.written_content(CODE) == CODE  # no fence: the answer is the file
    assert writing.written_content("```\n```") == ""


def test_python_that_does_not_parse_is_named_with_its_line() -> None:
    assert writing.syntax_error("m.py", "def add(moment):") .startswith("line 1")
    assert writing.syntax_error("m.py", CODE) == ""
    assert writing.syntax_error("notes.md", "def add(moment):") == ""  # only Python is read


def test_created_modified_and_appended_files_are_written_edits_and_deletes_stay() -> None:
    plan = _plan(
        r.write("a", "a.py", STUB, "modify"),
        r.write("b", "b.py", "x = 1\n", "append"),
        r.write("c", "c.py", "", "delete"),
        r.write("d", "d.py", "<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE", "edit"),
        r.verify("v"),
    )
    assert [s.id for s in writing.to_write(plan)] == ["a", "b"]
    outline = writing.outline(plan)
    assert [getattr(s, "content", None) for s in outline.steps] == ["", "", "", plan.steps[3].content, None]  # type: ignore[union-attr]
    assert "`a.py`" in writing.write_ask(writing.to_write(plan)[0], plan.summary)


def test_a_free_text_call_sends_no_schema_to_either_provider() -> None:
    for provider in ("ollama", "openai"):
        llm = LLMSettings(provider=provider)
        assert {"format", "response_format"}.isdisjoint(build_body(llm, "m", [], "file", None))
        assert {"format", "response_format"} & set(build_body(llm, "m", [], "plan", {"type": "object"}))


@pytest.mark.usefixtures("worker")
async def test_the_written_code_lands_not_the_stub_in_the_plan(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    plan = r.plan(r.write("s1", "src/calc/mul.py", STUB), r.write("s2", "tests/test_mul.py", TEST), r.verify("s3"))
    fake.script("plan", plan)
    fake.script("file", f"```python\n{CODE}```", f"```python\n{TEST}```")
    fake.default("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    assert (workspace / "src/calc/mul.py").read_text() == CODE
    writes = fake.calls("file")
    assert len(writes) == 2 and "`src/calc/mul.py`" in writes[0]["messages"][-1]["content"]
    # The coder wrote while seeing its plan without the draft it had put in it.
    assert "pass" not in writes[0]["messages"][-2]["content"]
    assert [u.role for u in state.usage] == ["coder", "coder", "coder", "reviewer", "reviewer"]


@pytest.mark.usefixtures("worker")
async def test_python_that_does_not_parse_is_asked_for_again_with_the_error(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    compiles = r.verify("s2", "python -m py_compile src/calc/mul.py")
    fake.script("plan", r.plan(r.write("s1", "src/calc/mul.py", ""), compiles))
    fake.script("file", "```python\ndef multiply(a, b):\n```", f"```python\n{CODE}```")
    fake.default("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    assert (workspace / "src/calc/mul.py").read_text() == CODE
    repair = fake.calls("file")[1]["messages"][-1]["content"]
    assert "src/calc/mul.py cannot be used: line 1" in repair
    assert any("writes src/calc/mul.py (repair 1)" in e.message for e in state.events)
    assert [res.step_id for res in state.results] == ["s1", "s2"]  # written twice, applied once
