"""Prompt building: project state, the files that matter, the charter, the answer's schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

from temporalio import activity

from activities.reads import read_capped
from models.edits import WHOLE_FILE_MAX_BYTES
from models.project import Project
from models.request import PromptInput, PromptOutput

CHARTERS = Path(__file__).parent / "charters"
CHARTER_FILE = Path(".iter") / "charter.md"
CHARTER_CAP = 64_000
CHARS_PER_TOKEN = 4  # a rough, model-independent estimate; the model's own count is recorded later

SYSTEM = """You are the coder of iter. You turn one feature request into a plan of steps that a
machine executes in the project's workspace, inside an isolated container without network.
Answer with JSON only (the server holds your answer to the plan's schema; the shape at the end
of the request shows it). Step types:
- "file": create, modify, append, or delete a file; paths are relative to the workspace root.
  Leave "content" empty ("") for create, modify and append: you write each file's code next, on
  its own, as a code block. A file marked "large" is changed with action "edit" instead:
  its content is one or more blocks, each SEARCH text copied exactly from the file, once:
  <<<<<<< SEARCH
  lines as they are now
  =======
  the lines that replace them
  >>>>>>> REPLACE
- "command": a shell command that finishes on its own (no servers, no editors, no prompts).
- "verify": a read-only check, such as running the tests; at least one, at the end.
Never write placeholders such as "... rest unchanged"; never touch .git/; never use sudo,
the network, or files outside the workspace."""

# The command that runs a stack's tests, when the project names none (``project.test_command``).
TEST_COMMANDS = {"python": "python -m pytest -q"}


def charter_for(project: Project, workspace: Path, override: str = "") -> str:
    """The user's own charter (``.iter/charter.md``) wins over the built-in one for the stack."""
    if override:
        return override
    own = read_capped(workspace, str(CHARTER_FILE), CHARTER_CAP)
    if own is not None:
        return own
    builtin = CHARTERS / f"{project.stack}.md"
    return (builtin if builtin.is_file() else CHARTERS / "generic.md").read_text()


def project_state(project: Project, request_id: str) -> str:
    lines = [f"Project: {project.name} (stack: {project.stack})"]
    if project.features:
        lines.append("Features: " + "; ".join(f"{f.name} [{f.type}]" for f in project.features))
    if project.endpoints:
        lines.append("Endpoints: " + "; ".join(f"{e.method} {e.path} ({e.name})" for e in project.endpoints))
    others = [r for r in project.requests if r.id != request_id]
    if others:
        lines.append("Other requests: " + "; ".join(f"{r.id} [{r.status}] {r.description[:80]}" for r in others))
    return "\n".join(lines)


def project_test_command(project: Project) -> str:
    return project.test_command or TEST_COMMANDS.get(project.stack, "")


_TEST_NAME = re.compile(r"(^|[/_.-])tests?([/_.-]|$)", re.I)


def answer_shape(files: list[tuple[str, str]], tests: str) -> str:
    """The answer's shape for THIS request: its own file, the action that fits it, and the test
    command, with ``<...>`` where the code goes. A worked example with real code gets copied whole
    by a small model (Qwen 0.5B answered a calc.py example, file and all, to every exercise); a
    copied ``<...>`` is placeholder text, which the gate blocks and says so."""
    code = [(rel, how) for rel, how in files if not _TEST_NAME.search(rel)]
    target, action = (code or files or [("the file to change", "create")])[0]  # a code file before a test
    content = f"<your edit blocks for {target} here>" if action == "edit" else ""  # written next, on its own
    shape = {
        "summary": "<one line: what the change does>",
        "steps": [
            {"id": "s1", "type": "file", "path": target, "action": action, "content": content},
            {"id": "s2", "type": "verify", "command": tests or "<a read-only command that checks the change>"},
        ],
    }
    return json.dumps(shape)


def build(inp: PromptInput) -> PromptOutput:
    workspace = Path(inp.workspace)
    project = inp.project
    request = project.request(inp.request_id)
    if request is None:
        raise ValueError(f"request {inp.request_id} is not in the project")
    wanted = list(dict.fromkeys([*project.selected_files, *request.affected_files]))
    sections: list[str] = []
    included: list[str] = []
    actions: list[tuple[str, str]] = []  # each file and the action that fits it
    for rel in wanted:
        text = read_capped(workspace, rel, inp.max_file_bytes)
        if text is None:
            sections.append(f"--- {rel} (does not exist yet: action create)")
            actions.append((rel, "create"))
            continue
        included.append(rel)
        # Say which action fits: small models "create" files that exist, which the gate blocks.
        large = len(text.encode()) > WHOLE_FILE_MAX_BYTES
        how = "exists, large: change it with action edit" if large else "exists: change it with action modify"
        sections.append(f"--- {rel} ({how})\n{text}")
        actions.append((rel, "edit" if large else "modify"))
    feature = project.feature(request.feature) if request.feature else None
    criteria = "\n".join(f"- {c}" for c in request.criteria) or "- the request works and its tests pass"
    tests = project_test_command(project)
    user = "\n\n".join(
        [
            project_state(project, inp.request_id),
            "Coding standards:\n" + charter_for(project, workspace, inp.charter),
            "Files (current contents):\n" + ("\n".join(sections) or "(none selected)"),
            f"Request {request.id}" + (f" (feature: {feature.name})" if feature else "") + f":\n{request.description}",
            "Acceptance criteria:\n" + criteria,
            (f"The project's test command: {tests}\n" if tests else "")
            + "Answer with the plan: a file step for every file you change (content left empty: you write "
            + "each file next), then a verify step"
            + (f" running `{tests}`." if tests else " that checks the change.")
            + "\nThe answer's shape (write what goes in each <...>; add steps as the request needs):\n"
            + answer_shape(actions, tests),
        ]
    )
    approx = (len(SYSTEM) + len(user)) // CHARS_PER_TOKEN
    return PromptOutput(system=SYSTEM, user=user, context_files=included, approx_tokens=approx, test_command=tests)


@activity.defn
async def build_prompt(inp: PromptInput) -> PromptOutput:
    return build(inp)
