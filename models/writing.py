"""Plan, then write: the code of a file step is written in an answer of its own, as a fenced code
block, not inside the plan's JSON.

Code inside a JSON string is code a model was never trained to write: every newline must be the
two characters ``\\n``. Under a schema-constrained decoder a small model closes the string at the
first line instead: on the real-task benchmark Qwen2.5-Coder-0.5B answered ``"content": "def
add(moment):"`` for 8 of 8 exercises (0 solved), while the same model asked for the file in a
code block solved 2 of them. So the plan says what changes and how it is checked, with each file
step's content left empty, and each file is then asked for on its own, in the format models write
code in. What a model wrote into the plan anyway is not kept: the same model copied the stub it
was shown (``def add(moment):\n    pass``), which parses and solves nothing; a model that follows
the instruction pays nothing extra. Edit blocks (large files) and deletes stay in the plan. Pure:
the workflows ask, this decides what to ask and reads the answers."""

from __future__ import annotations

import ast
import re
from pathlib import PurePosixPath
from typing import TypeVar

from models.plan import FileStep, Plan, Step

PlanT = TypeVar("PlanT", bound=Plan)  # a request's plan or a session's (which carries task operations too)

WRITTEN_ACTIONS = ("create", "modify", "append")  # edit blocks and deletes stay in the plan
FENCE = re.compile(r"^```[^\n`]*\n(.*?)^```[ \t]*$", re.S | re.M)
LANGUAGES = {".py": "python", ".js": "javascript", ".ts": "typescript", ".sh": "bash", ".md": "markdown"}


def to_write(plan: Plan) -> list[FileStep]:
    """The plan's file steps whose content is written in an answer of its own."""
    return [s for s in plan.steps if isinstance(s, FileStep) and s.action in WRITTEN_ACTIONS]


def outline(plan: PlanT) -> PlanT:
    """The plan as the coder sees it while writing: the steps it writes next have no content yet
    (a draft there is what a small model copies)."""
    return filled(plan, {s.id: "" for s in to_write(plan)})


def syntax_error(path: str, content: str) -> str:
    """Why the content cannot be the file (Python that does not parse), or ""."""
    if PurePosixPath(path).suffix != ".py":
        return ""
    try:
        ast.parse(content)
    except (SyntaxError, ValueError) as exc:  # ValueError: a NUL byte
        line = getattr(exc, "lineno", None)
        return f"line {line}: {exc.msg if isinstance(exc, SyntaxError) else exc}" if line else str(exc)
    return ""


def write_ask(step: FileStep, summary: str) -> str:
    """What the coder is asked for one file, after its plan."""
    fence = "```" + LANGUAGES.get(PurePosixPath(step.path).suffix, "")
    if step.action == "append":
        what = f"the text to append to `{step.path}`"
    else:
        what = f"the complete new content of `{step.path}`, every line of the file"
    return (
        f"Step {step.id}: now write {what}, for the plan: {summary}\n"
        f"Answer with one {fence} code block and nothing else. Real code only: no placeholders, "
        "no '...', nothing left out."
    )


def written_content(answer: str) -> str:
    """The code in an answer: its longest fenced block, or the whole answer when it has none."""
    blocks = FENCE.findall(answer)
    return max(blocks, key=len) if blocks else answer


def filled(plan: PlanT, contents: dict[str, str]) -> PlanT:
    """The plan with the written content of each step in ``contents`` (by step id)."""
    steps: list[Step] = [
        s.model_copy(update={"content": contents[s.id]}) if isinstance(s, FileStep) and s.id in contents else s
        for s in plan.steps
    ]
    return plan.model_copy(update={"steps": steps})
