"""Criteria that are code are checked as code (models/criteria.py), and a whole-file rewrite keeps
the definitions the file had (models/definitions.py): the demo's false PASS, where the coder never
wrote ``multiply``, the old tests passed, and the reviewer model said PASS."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.definitions import keep_definitions
from cli.history import _result_brief
from models.config import Settings
from models.criteria import as_expression, plan_modules, with_criteria
from models.definitions import KeepInput, merge, top_level_names
from models.plan import Plan, VerifyStep
from policy import Policy
from policy.engine import evaluate_steps
from tests import replies as r
from tests.conftest import example_project
from tests.fake_llm import FakeModel
from tests.pipeline import run_request

OPS = Path(__file__).parent.parent / "examples/calc/src/calc/ops.py"
WITH_MULTIPLY = OPS.read_text() + "\n\ndef multiply(a: float, b: float) -> float:\n    return a * b\n"
ONLY_MULTIPLY = '"""Arithmetic."""\n\n\ndef multiply(a: float, b: float) -> float:\n    return a * b\n'
CRITERION = "multiply(3, 4) == 12"


def _plan(*steps: dict[str, object]) -> Plan:
    return Plan.model_validate(r.plan(*steps))


def _checks(plan: Plan) -> list[VerifyStep]:
    return [s for s in plan.steps if isinstance(s, VerifyStep) and s.id.startswith("criterion")]


def test_only_criteria_that_call_code_are_checked() -> None:
    assert as_expression(CRITERION) == CRITERION
    assert as_expression("`add(1, 2) == 3`") == "add(1, 2) == 3"  # markdown code quotes
    for prose in ("the test suite passes", "fast", "42", "multiply works, and is tested", ""):
        assert as_expression(prose) == "", prose


def test_the_modules_imported_are_those_the_plan_writes_not_its_tests() -> None:
    plan = _plan(
        r.write("s1", "src/calc/ops.py", "", "modify"),
        r.write("s2", "tests/test_ops.py", "", "modify"),
        r.write("s3", "setup.py", ""),
        r.write("s4", "old.py", "", "delete"),
        r.verify("v"),
    )
    assert plan_modules(plan) == ["calc", "calc.ops"]
    assert with_criteria(_plan(r.write("s1", "README.md", ""), r.verify("v")), [CRITERION])[1] == []


def _run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=30)


def test_the_check_fails_until_the_code_meets_the_criterion_and_says_what_it_got(tmp_path: Path) -> None:
    (tmp_path / "src/calc").mkdir(parents=True)
    (tmp_path / "src/calc/__init__.py").write_text('from calc.ops import add\n__all__ = ["add"]\n')
    plan, checked = with_criteria(
        _plan(r.write("s1", "src/calc/ops.py", "", "modify"), r.verify("v")), [CRITERION, "the tests pass"]
    )
    assert checked == [CRITERION] and [s.id for s in plan.steps] == ["s1", "v", "criterion1"]
    command = _checks(plan)[0].command
    (tmp_path / "src/calc/ops.py").write_text(OPS.read_text())
    missing = _run(command, tmp_path)
    assert missing.returncode != 0 and "not defined in calc, calc.ops: multiply" in missing.stderr
    (tmp_path / "src/calc/ops.py").write_text(OPS.read_text() + "\n\ndef multiply(a, b):\n    return a + b\n")
    wrong = _run(command, tmp_path)
    assert wrong.returncode != 0 and "multiply(3, 4) gave 7" in wrong.stderr
    (tmp_path / "src/calc/ops.py").write_text(WITH_MULTIPLY)
    met = _run(command, tmp_path)
    assert met.returncode == 0 and "criterion met" in met.stdout, met.stderr
    assert not list(tmp_path.rglob("__pycache__"))  # a check writes nothing


def test_the_gate_passes_a_criterion_check_and_still_reads_the_code_in_one(tmp_path: Path) -> None:
    (tmp_path / "calc").mkdir()
    benign = with_criteria(_plan(r.write("s1", "calc/ops.py", ""), r.verify("v")), [CRITERION])[0]
    assert evaluate_steps(benign.steps, tmp_path, Policy()) == []
    # A criterion is the user's text, but it is code that will run: the rules read it like any.
    hostile = "len(__import__('shutil').rmtree('/home')) == 0"
    plan = with_criteria(_plan(r.write("s1", "calc/ops.py", ""), r.verify("v")), [hostile])[0]
    findings = evaluate_steps(plan.steps, tmp_path, Policy())
    assert any(f.step_id == "criterion1" for f in findings), findings


def test_an_answer_that_leaves_definitions_out_is_merged_into_the_file_as_it_is() -> None:
    original = OPS.read_text()
    assert top_level_names("ops.py", original) == ["add", "subtract"]
    merged, kept = merge("ops.py", original, ONLY_MULTIPLY, "Add multiply")
    assert kept == ["add", "subtract"] and merged == WITH_MULTIPLY
    assert top_level_names("ops.py", merged) == ["add", "subtract", "multiply"]
    # A definition the answer gives replaces the file's own in place; a new import goes on top.
    better_add = "import math\n\n\ndef add(a, b):\n    return math.fsum([a, b])\n"
    merged, kept = merge("ops.py", original, better_add, "Make add exact")
    assert kept == ["subtract"] and "math.fsum" in merged and "return a + b" not in merged
    assert merged.index("import math") < merged.index("def add") < merged.index("def subtract")
    # What the request names may go; an answer that keeps everything is taken as it is.
    assert merge("ops.py", original, ONLY_MULTIPLY, "Replace add and subtract by multiply") == (ONLY_MULTIPLY, [])
    assert merge("ops.py", original, WITH_MULTIPLY, "Add multiply") == (WITH_MULTIPLY, [])
    assert merge("ops.py", original, "def broken(:\n", "x") == ("def broken(:\n", [])  # the syntax check speaks
    assert merge("notes.md", "# a\n", "b\n", "x") == ("b\n", [])


async def test_the_merge_never_reads_through_a_symlink_out_of_the_workspace(tmp_path: Path) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "outside.py"
    ws.mkdir()
    outside.write_text("SECRET = 'sk-live-do-not-read'\n\n\ndef add(a, b):\n    return a + b\n")
    (ws / "ops.py").symlink_to(outside)
    out = await keep_definitions(KeepInput(workspace=str(ws), path="ops.py", content=ONLY_MULTIPLY, request_text=""))
    assert out.content == ONLY_MULTIPLY and out.kept == []  # nothing of the outside file reaches the plan


@pytest.mark.usefixtures("worker")
async def test_a_reviewer_pass_cannot_stand_over_a_criterion_the_code_does_not_meet(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    """The demo's false PASS: the coder keeps add and subtract but never writes multiply; the old
    tests pass and the reviewer says PASS every time. The criterion's check fails, so it cannot pass."""
    fake.default("plan", r.plan(r.write("s1", "src/calc/ops.py", "", "modify"), r.verify("s2")))
    fake.default("file", f"```python\n{OPS.read_text()}```")
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())

    state = await run_request(client, settings, workspace, example_project(CRITERION))

    assert state.outcome != "passed"
    failed = [res for res in state.results if res.step_id == "criterion1"]
    assert failed and not failed[0].ok and "multiply" in failed[0].output
    assert any("checked as code: multiply(3, 4) == 12" in e.message for e in state.events)


@pytest.mark.usefixtures("worker")
async def test_a_file_answer_that_left_definitions_out_keeps_them_and_the_criterion_passes(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    """The demo's 0.5B answer: only the new function. Kept, not asked again (the model sent the
    same answer back every time it was asked)."""
    fake.script("plan", r.plan(r.write("s1", "src/calc/ops.py", "", "modify"), r.verify("s2")))
    fake.script("file", f"```python\n{ONLY_MULTIPLY}```")
    fake.default("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())

    state = await run_request(client, settings, workspace, example_project(CRITERION))

    assert state.outcome == "passed", state.error
    assert len(fake.calls("file")) == 1
    written = (workspace / "src/calc/ops.py").read_text()
    assert top_level_names("ops.py", written) == ["add", "subtract", "multiply"]
    assert any("left out add, subtract: kept from src/calc/ops.py" in e.message for e in state.events)
    assert _result_brief({"content": written, "kept": ["add", "subtract"]}) == "kept add, subtract"  # iter history
    assert [(res.step_id, res.ok) for res in state.results] == [("s1", True), ("s2", True), ("criterion1", True)]
