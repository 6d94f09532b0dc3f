"""The plan contract: what the coder model answers, and the step tree the workflow runs.

The JSON schema sent to the model is generated from these classes, so the answer is parsed by the
same definition that constrained it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from models.clip import clip_middle
from models.edits import EditError, parse_blocks

FileAction = Literal["create", "modify", "append", "delete", "edit"]

# A step id names journal entries and run keys, so only safe characters; the model chooses at most
# MODEL_ID_CHARS of them (checked where its answers are parsed), iter's fix-round prefix (``f12-``)
# makes room for itself under the pattern's longer limit.
STEP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
MODEL_ID_CHARS = 40
# A command reaches the executor as one argument of exec (Linux caps one at 128 KiB), and lives in
# history: long scripts belong in a file step.
MAX_COMMAND_CHARS = 16_000


class _StepBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=STEP_ID_PATTERN, description="Unique step id: letters, digits, _ or -, at most 40, e.g. s1")


class CommandStep(_StepBase):
    """A shell command run in the workspace."""

    type: Literal["command"]
    command: str = Field(min_length=1, max_length=MAX_COMMAND_CHARS)
    timeout_s: int | None = Field(default=None, ge=1, le=3600)


def _content_required(schema: dict[str, Any]) -> None:
    # The model must always write `content` (empty for delete): a constrained decoder then cannot
    # produce a create/modify/append without it, which the validator below would reject anyway.
    schema["required"] = [*schema.get("required", []), "content"]
    described = schema["properties"]["content"].get("description", "")
    schema["properties"]["content"] = {"type": "string", "description": described}


class FileStep(_StepBase):
    """A change to one file inside the workspace."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_content_required)

    type: Literal["file"]
    path: str = Field(min_length=1, description="Path relative to the workspace root")
    action: FileAction
    content: str | None = Field(
        default=None,
        description="Whole new content (create/modify), the text to append, search/replace blocks (edit), "
        "or empty (delete)",
    )

    @model_validator(mode="after")
    def _content_matches_action(self) -> FileStep:
        if self.action in ("create", "modify", "append", "edit") and self.content is None:
            raise ValueError(f"file step {self.id!r}: action {self.action!r} needs content")
        if self.action == "edit":
            try:
                parse_blocks(self.content or "")
            except EditError as exc:
                raise ValueError(f"file step {self.id!r}: {exc}") from None
        if self.action == "delete" and self.content:
            raise ValueError(f"file step {self.id!r}: delete takes no content")
        return self


class VerifyStep(_StepBase):
    """A read-only check, such as a test run; its output is evidence for the reviewer."""

    type: Literal["verify"]
    command: str = Field(min_length=1, max_length=MAX_COMMAND_CHARS)
    timeout_s: int | None = Field(default=None, ge=1, le=3600)


Step = Annotated[CommandStep | FileStep | VerifyStep, Field(discriminator="type")]
STEP_ADAPTER: TypeAdapter[CommandStep | FileStep | VerifyStep] = TypeAdapter(Step)


class Plan(BaseModel):
    """The coder's answer: a summary and the ordered steps that implement the request."""

    model_config = ConfigDict(extra="forbid", title="plan")

    summary: str
    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Plan:
        check_unique_ids(self.steps)
        return self


def check_unique_ids(steps: list[CommandStep | FileStep | VerifyStep]) -> None:
    """The ids a model chose: short, and unique (two steps with one id would share a journal entry,
    so the second would never run)."""
    seen: set[str] = set()
    for step in steps:
        if len(step.id) > MODEL_ID_CHARS:
            raise ValueError(f"step id {step.id[:50]!r} is longer than {MODEL_ID_CHARS} characters")
        if step.id in seen:
            raise ValueError(f"duplicate step id {step.id!r}: every step needs an id of its own")
        seen.add(step.id)


class StepNode(BaseModel):
    """A step in the request's tree; fix steps hang under the step they repair."""

    step: Step
    depth: int = 0
    children: list[StepNode] = Field(default_factory=list)


def iter_nodes(nodes: list[StepNode]) -> list[StepNode]:
    """Depth-first, parents before children: the order a reader expects."""
    out: list[StepNode] = []
    for node in nodes:
        out.append(node)
        out.extend(iter_nodes(node.children))
    return out


def step_to_dict(step: CommandStep | FileStep | VerifyStep, content_cap: int = 0) -> dict[str, object]:
    """The step's fields; with ``content_cap``, a file's content longer than that is its head and
    tail (what a reviewer model reads: it has a context window, the deterministic rules do not)."""
    shown = step.model_dump(exclude_none=True)
    content = step.content if isinstance(step, FileStep) else None
    if content_cap and content and len(content) > content_cap:
        shown["content"] = clip_middle(content, content_cap)
        shown["content_shown"] = f"head and tail of {len(content):,} characters"
    return shown


def tree_to_json(nodes: list[StepNode], content_cap: int = 0) -> list[dict[str, object]]:
    """The contract's shape: each step's fields, with fix steps under ``children``."""
    return [
        {
            **step_to_dict(n.step, content_cap),
            **({"children": tree_to_json(n.children, content_cap)} if n.children else {}),
        }
        for n in nodes
    ]
