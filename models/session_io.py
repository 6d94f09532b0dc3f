"""The session workflow's input and its activities' contracts (hooks, git, the prompt). Every value
lands in workflow history, so none of it may be a secret."""

from __future__ import annotations

from pydantic import BaseModel, Field
from temporalio.contrib.workflow_streams import WorkflowStreamState

from models.config import Settings
from models.holds import HoldMode
from models.session import HookPoint, HookReport, HooksConfig, IterationSummary, Note, SessionState, Task

DEFAULT_HISTORY_LIMIT = 5000  # events per run before continue_as_new; Temporal's hard limit is 51,200


class SessionInput(BaseModel):
    name: str
    workspace: str
    spec_path: str = Field(description="Relative to the workspace, re-read for every prompt")
    spec_text: str = Field(default="", description="The spec when the session started: its checkboxes become tasks")
    settings: Settings = Field(description="iterations, auto_commit and template come from here too")
    template_path: str = Field(default="", description="Absolute path of the user's template; empty: the default")
    extra: str = ""
    carry: SessionState | None = Field(default=None, description="The state to go on from")
    continued: bool = Field(default=False, description="True after continue_as_new: no session_start again")
    history_limit: int = Field(default=DEFAULT_HISTORY_LIMIT, ge=200)
    stream: WorkflowStreamState | None = Field(default=None, description="The event stream, over continue_as_new")
    hold_mode: HoldMode | None = Field(
        default=None, description="How held steps are settled when the project says nothing (`--headless`: block)"
    )


# --- hooks -------------------------------------------------------------------------------------


class LoadHooksOutput(BaseModel):
    config: HooksConfig = Field(default_factory=HooksConfig)
    path: str = ""
    error: str = ""


class RunHooksInput(BaseModel):
    workspace: str
    point: HookPoint
    hooks: HooksConfig
    variables: dict[str, str] = Field(default_factory=dict)
    iteration: int = 0


class RunHooksOutput(BaseModel):
    reports: list[HookReport] = Field(default_factory=list)
    piped: str = Field(default="", description="Output of the hooks with pipe_output, for the model")


# --- git -----------------------------------------------------------------------------------------


class GitSnapshotOutput(BaseModel):
    is_repo: bool = False
    dirty: dict[str, str] = Field(default_factory=dict, description="path -> content digest of what is uncommitted")
    error: str = ""


class GitCommitInput(BaseModel):
    workspace: str
    message: str
    marker: str = Field(description="A trailer that makes the commit findable, so a retry never commits twice")
    baseline: dict[str, str] = Field(default_factory=dict, description="Dirty before the iteration: not ours")


class GitCommitOutput(BaseModel):
    commit: str = ""
    files: list[str] = Field(default_factory=list)
    baseline: dict[str, str] = Field(default_factory=dict)
    error: str = ""
    skipped: str = ""


# --- the prompt ----------------------------------------------------------------------------------


class SessionPromptInput(BaseModel):
    workspace: str
    session: str
    spec_path: str
    spec_fallback: str = ""
    template_path: str = ""
    iteration: int
    tasks: list[Task]
    notes: list[Note]
    summaries: list[IterationSummary]
    summaries_dropped: int = 0
    extra: str = ""
    hook_output: list[str] = Field(default_factory=list)
    pre_hook_output: str = ""
    messages: list[str] = Field(default_factory=list)
    feedback: list[str] = Field(default_factory=list)
    budget_chars: int = Field(ge=2000)


class SessionPromptOutput(BaseModel):
    system: str
    user: str
    approx_tokens: int
