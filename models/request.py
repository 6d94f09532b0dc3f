"""The request workflow's contract: its one input, its state (returned whole by a query) and its
result. Every value here lands in workflow history, so none of it may be a secret."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from models.config import Settings
from models.holds import HoldMode, HoldState
from models.plan import Step, StepNode
from models.project import Project
from models.review import Finding, InfoRequest, PostReview
from models.worktree import LandOutput, Sandbox

Phase = Literal["queued", "isolate", "prompt", "stream", "parse", "review", "execute", "verify", "land", "done"]
Outcome = Literal["running", "passed", "failed", "blocked", "cancelled"]


class RequestInput(BaseModel):
    project: Project
    request_id: str
    workspace: str
    settings: Settings
    charter: str = ""
    hold_mode: HoldMode | None = Field(
        default=None, description="How held steps are settled when the project says nothing"
    )


class ModelUsage(BaseModel):
    """One model interaction: who answered, how much, how fast."""

    role: str
    model: str
    host: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    duration_s: float = 0.0
    tokens_per_s: float = 0.0
    done_reason: str = ""


class StepResult(BaseModel):
    step_id: str
    run_key: str
    kind: str
    ok: bool
    exit_code: int | None = None
    output: str = ""
    duration_s: float = 0.0
    timed_out: bool = False
    skipped: bool = False
    file_change: Literal["created", "modified", "deleted", "appended", ""] = ""
    path: str = ""


class PhaseEvent(BaseModel):
    phase: Phase
    message: str


class RequestState(BaseModel):
    workflow_id: str = ""
    run_id: str = ""
    project: str = ""
    request_id: str = ""
    phase: Phase = "queued"
    outcome: Outcome = "running"
    paused: bool = False
    summary: str = ""
    tree: list[StepNode] = Field(default_factory=list)
    results: list[StepResult] = Field(default_factory=list)
    usage: list[ModelUsage] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    holds: HoldState = Field(default_factory=HoldState)
    review: PostReview | None = None
    safety_verdict: str = ""
    verify_verdict: str = ""
    prompt_tokens: int = 0
    context_files: int = 0
    parse_repairs: int = 0
    # The verify step iter added because the plan had none (the project's test command), or "".
    added_verify: str = ""
    # Model calls whose answer repeated an earlier one, and were asked again differently.
    repeated_answers: int = 0
    block_replans: int = 0
    fix_rounds: int = 0
    info_rounds: int = 0
    review_repairs: int = 0  # reviewer answers iter refused: a PASS over a failed step, a taken step id
    pending_messages: list[str] = Field(default_factory=list)
    events: list[PhaseEvent] = Field(default_factory=list)
    error: str = ""
    sandbox: Sandbox | None = Field(default=None, description="Where the steps ran: the request's own worktree")
    landing: LandOutput | None = Field(default=None, description="How the change reached the checkout, if it did")

    @property
    def run_key(self) -> str:
        """Where this run's journals live: a new run of the same request starts clean."""
        return f"{self.workflow_id}.{self.run_id}"


class RequestResult(BaseModel):
    state: RequestState


# --- activity contracts ------------------------------------------------------------------------


class PromptInput(BaseModel):
    project: Project
    request_id: str
    workspace: str
    max_file_bytes: int
    charter: str = ""


class PromptOutput(BaseModel):
    system: str
    user: str
    context_files: list[str]
    approx_tokens: int
    test_command: str = Field(
        default="", description="The project's test command; a plan without a verify step gets it"
    )


Role = Literal["coder", "reviewer"]
SchemaName = Literal["plan", "safety_review", "post_review", "session_plan", "file"]  # file: a code block, no schema


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ModelCallInput(BaseModel):
    role: Role
    schema_name: SchemaName
    messages: list[ChatMessage]
    settings: Settings
    repair: int = 0  # which repair of an unreadable answer this call is (0: the first answer)


class ModelCallOutput(BaseModel):
    text: str
    usage: ModelUsage
    truncated: bool = False


class SafetyReviewInput(BaseModel):
    workspace: str
    request_description: str
    steps: list[Step]
    settings: Settings
    guidance: list[str] = Field(default_factory=list)


class SafetyReviewOutput(BaseModel):
    verdict: Literal["PASS", "BLOCK", "HOLD"]  # HOLD: only held findings, a person or the hold mode decides
    findings: list[Finding]
    hold_mode: HoldMode | None = Field(default=None, description="The project's `hold:` in .iter/policy.yaml")
    digests: dict[str, str] = Field(
        default_factory=dict, description="step id -> digest of its file as the review saw it (policy.digests)"
    )
    usage: list[ModelUsage] = Field(default_factory=list)
    network_steps: list[str] = Field(default_factory=list)


class ExecuteInput(BaseModel):
    workflow_id: str
    workspace: str
    steps: list[Step]
    run_keys: list[str]
    settings: Settings
    # Ids of the steps that run with network access: a project allow rule with ``network: true``
    # approved them, in a safety review the whole plan passed. Every other step has none.
    network_steps: list[str] = Field(default_factory=list)
    # step id -> digest of its file as the safety review saw it (policy.digests): a file step
    # refuses to write over a file that changed since, instead of losing someone's edit.
    reviewed_digests: dict[str, str] = Field(default_factory=dict)
    journal_seal: str = Field(default="", description="Seals the run's journal entries (see executor.base)")


class ExecuteOutput(BaseModel):
    results: list[StepResult]


class Evidence(BaseModel):
    kind: str
    target: str
    content: str


class EvidenceInput(BaseModel):
    workflow_id: str
    workspace: str
    requests: list[InfoRequest]
    round: int
    settings: Settings
    journal_seal: str = ""


class EvidenceOutput(BaseModel):
    items: list[Evidence]


class PostReviewInput(BaseModel):
    workspace: str
    request_description: str
    criteria: list[str]
    tree: list[StepNode]
    results: list[StepResult]
    evidence: list[Evidence] = Field(default_factory=list)
    touched_paths: list[str] = Field(default_factory=list)
    settings: Settings
    guidance: list[str] = Field(default_factory=list)


class PostReviewOutput(BaseModel):
    review: PostReview
    usage: list[ModelUsage] = Field(default_factory=list)
