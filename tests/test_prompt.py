"""The coder's prompt shows the answer's shape on the request's own files, with no code in it to
copy: small models copy a worked example whole (a calc.py example, file and all)."""

from __future__ import annotations

import json
from pathlib import Path

from activities.prompt import build
from models import writing
from models.plan import Plan
from models.project import FeatureRequest, Project
from models.request import PromptInput
from policy import evaluate_steps, load_policy


def _prompt(workspace: Path, *selected: str) -> str:
    project = Project(
        name="allergies",
        stack="python",
        selected_files=list(selected),
        requests=[FeatureRequest(id="req_01", description="Implement Allergies(score).allergic_to(item).")],
    )
    out = build(PromptInput(project=project, request_id="req_01", workspace=str(workspace), max_file_bytes=10_240))
    return out.system + "\n" + out.user


def _shape(prompt: str) -> dict[str, object]:
    return dict(json.loads(prompt.rsplit("\n", 1)[-1]))


def test_the_shape_names_the_requests_own_file_and_test_command_not_an_example(tmp_path: Path) -> None:
    (tmp_path / "allergies_test.py").write_text("from allergies import Allergies\n")
    (tmp_path / "allergies.py").write_text("class Allergies:\n    pass\n")

    prompt = _prompt(tmp_path, "allergies_test.py", "allergies.py")  # the test file selected first

    shape = _shape(prompt)
    file_step, verify = shape["steps"]  # type: ignore[misc]
    assert (file_step["path"], file_step["action"]) == ("allergies.py", "modify")
    assert verify == {"id": "s2", "type": "verify", "command": "python -m pytest -q"}
    assert "calc.py" not in prompt and "double" not in prompt


def test_a_new_file_gets_create_and_a_large_one_edit(tmp_path: Path) -> None:
    assert _shape(_prompt(tmp_path, "src/new_module.py"))["steps"][0]["action"] == "create"  # type: ignore[index]
    (tmp_path / "big.py").write_text("x = 1\n" * 4_000)
    step = _shape(_prompt(tmp_path, "big.py"))["steps"][0]  # type: ignore[index]
    assert step["action"] == "edit" and step["content"] == "<your edit blocks for big.py here>"


def test_a_copied_shape_is_a_plan_whose_file_is_written_next(tmp_path: Path) -> None:
    """The shape holds no code to copy: its file step's content is empty, and that file is what
    the coder is asked to write on its own after the plan (models/writing.py)."""
    (tmp_path / "allergies.py").write_text("class Allergies:\n    pass\n")
    copied = Plan.model_validate(_shape(_prompt(tmp_path, "allergies.py")))

    assert [(s.path, s.content) for s in writing.to_write(copied)] == [("allergies.py", "")]
    written = writing.filled(copied, {"s1": "class Allergies:\n    def __init__(self, score: int) -> None:\n"
                                              "        self.score = score\n"})
    assert evaluate_steps(written.steps, tmp_path, load_policy(tmp_path)) == []
