"""The live events of a workflow, as every viewer sees them: ``iter orchestrate``'s lines, ``iter
watch``'s full screen, the web dashboard.

Each request and session workflow carries one event stream (``temporalio.contrib.
workflow_streams``): the workflow publishes what it decides (phases, verdicts, task and note
changes, held steps, messages) at no history cost, since replay rebuilds it; activities publish
what only they see while it happens (model tokens, step output, hook output) through batched,
de-duplicated signals. A reader reaches the stream through Temporal alone, from any machine.

Pure: no I/O. ``parse_event`` turns one stream item's JSON back into its typed event.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from models.holds import HeldStep
from models.request import ModelUsage
from models.review import SAFETY_POINTS, Finding, PostReview

# Topics, so that a reader that shows no tokens does not fetch them.
TOPIC_EVENTS = "events"  # everything a workflow decides, and model and step boundaries
TOPIC_TOKENS = "tokens"  # model tokens, coalesced
TOPIC_OUTPUT = "output"  # step and hook output lines
TOPICS = (TOPIC_EVENTS, TOPIC_TOKENS, TOPIC_OUTPUT)

# Bounds: the stream's retained log rides in the workflow's memory and through continue-as-new.
MAX_RETAINED = 4000  # items; when the log grows past this it is cut back to KEEP_AFTER_TRIM
KEEP_AFTER_TRIM = 2000
MAX_LIVE_OUTPUT_BYTES = 64_000  # per step: the rest is in the step's result, never lost
MAX_LINE_CHARS = 2000


class PhaseChanged(BaseModel):
    """A line of the workflow's own story: entering a phase, or a note about it."""

    kind: Literal["phase"] = "phase"
    phase: str
    message: str
    iteration: int = 0


class ModelStarted(BaseModel):
    kind: Literal["model_start"] = "model_start"
    role: str
    model: str
    schema_name: str
    repair: int = 0  # 0: a first answer; N: the Nth answer asked for because the last was unreadable


class Tokens(BaseModel):
    """Consecutive model tokens, coalesced into one item per flush. ``call`` names the model call
    and ``at`` is how many characters of its answer came before these: a reader that already
    showed them from the call's heartbeat (``LiveTail``) shows only the rest."""

    kind: Literal["tokens"] = "tokens"
    role: str
    text: str
    call: str = ""
    at: int = 0


class LiveTail(BaseModel):
    """The fast lane of model tokens: the end of the answer so far, in the model-call activity's
    heartbeat details (key ``live``). Heartbeats reach the server within the worker's throttle
    and never enter history, so a reader polling ``describe()`` shows tokens sooner than the
    stream's coalesced signals carry them, at no history cost; the stream still carries every
    token (a late reader, a missed heartbeat)."""

    call: str
    role: str
    chars: int  # characters of the answer so far
    tail: str  # its last characters (at most LIVE_TAIL_CHARS)


LIVE_TAIL_CHARS = 4000
LIVE_TAIL_KEY = "live"


class ModelEnded(BaseModel):
    kind: Literal["model_end"] = "model_end"
    role: str
    usage: ModelUsage


class ModelFailed(BaseModel):
    kind: Literal["model_error"] = "model_error"
    role: str
    model: str
    message: str


class StepStarted(BaseModel):
    kind: Literal["step_start"] = "step_start"
    step_id: str
    run_key: str
    step_type: str
    detail: str = Field(default="", description="The command, or the file a file step writes")


class OutputLines(BaseModel):
    """Lines a running step (``source="step"``) or hook (``source="hook"``) printed."""

    kind: Literal["output"] = "output"
    source: Literal["step", "hook"] = "step"
    ref: str = Field(description="The step's run key, or the hook's point")
    lines: list[str]


class StepFinished(BaseModel):
    kind: Literal["step_end"] = "step_end"
    step_id: str
    run_key: str
    ok: bool
    exit_code: int | None = None
    duration_s: float = 0.0
    timed_out: bool = False
    skipped: bool = False


class Check(BaseModel):
    name: str
    ok: bool
    detail: str = ""


class VerdictGiven(BaseModel):
    """The safety review's verdict with its 8 checks, or the post-execution verdict with its criteria."""

    kind: Literal["verdict"] = "verdict"
    stage: Literal["safety", "verify"]
    verdict: str
    checks: list[Check] = Field(default_factory=list)
    findings: list[str] = Field(default_factory=list)

    def line(self) -> str:
        passed = sum(c.ok for c in self.checks)
        failing = next((c for c in self.checks if not c.ok), None)
        why = f"; {failing.name}: {failing.detail}" if failing else ""
        return f"{self.verdict} ({passed}/{len(self.checks)} checks){why}"[:300]


class StepHeld(BaseModel):
    """A step waits for a person: ``iter approve`` or ``iter deny``."""

    kind: Literal["held"] = "held"
    step_id: str
    reason: str
    resolved: Literal["", "approved", "denied"] = ""


class TaskChanged(BaseModel):
    kind: Literal["task"] = "task"
    id: str
    content: str
    status: str
    priority: int
    depends_on: list[str] = Field(default_factory=list)


class NoteAdded(BaseModel):
    kind: Literal["note"] = "note"
    seq: int
    type: str
    content: str
    iteration: int = 0


class HookRan(BaseModel):
    kind: Literal["hook"] = "hook"
    point: str
    command: str
    ok: bool
    status: str


class MessageQueued(BaseModel):
    kind: Literal["message"] = "message"
    text: str


class PausedChanged(BaseModel):
    kind: Literal["paused"] = "paused"
    paused: bool


class Finished(BaseModel):
    """The workflow's last event: its outcome (a request) or status (a session)."""

    kind: Literal["done"] = "done"
    outcome: str
    message: str = ""


class Notice(BaseModel):
    """Not published by a workflow: what a reader says about the stream itself (items it missed,
    a server that does not answer)."""

    kind: Literal["notice"] = "notice"
    message: str


LiveEvent = Annotated[
    PhaseChanged
    | ModelStarted
    | Tokens
    | ModelEnded
    | ModelFailed
    | StepStarted
    | OutputLines
    | StepFinished
    | VerdictGiven
    | StepHeld
    | TaskChanged
    | NoteAdded
    | HookRan
    | MessageQueued
    | PausedChanged
    | Finished
    | Notice,
    Field(discriminator="kind"),
]

_ADAPTER: TypeAdapter[LiveEvent] = TypeAdapter(LiveEvent)


def safety_verdict(verdict: str, findings: list[Finding]) -> VerdictGiven:
    """The 8 points, each passed unless a finding names it."""
    by_point: dict[int, list[Finding]] = {}
    for f in findings:
        by_point.setdefault(f.point, []).append(f)
    checks = [
        Check(
            name=f"{point}. {name}",
            ok=point not in by_point,
            detail="; ".join(f"step {f.step_id}: {f.reason}" for f in by_point.get(point, []))[:1000],
        )
        for point, name in SAFETY_POINTS.items()
    ]
    shown = "BLOCK" if findings and verdict == "PASS" else verdict
    return VerdictGiven(stage="safety", verdict=shown, checks=checks, findings=[f.line()[:1000] for f in findings])


def post_verdict(review: PostReview) -> VerdictGiven:
    checks = [Check(name=c.criterion[:300], ok=c.met, detail=c.evidence[:1000]) for c in review.criteria]
    return VerdictGiven(stage="verify", verdict=review.verdict, checks=checks)


def held_events(held: list[HeldStep]) -> list[StepHeld]:
    return [
        StepHeld(
            step_id=h.step_id,
            reason="; ".join(h.reasons)[:1000],
            resolved="" if h.decision == "waiting" else h.decision,
        )
        for h in held
    ]


def held_line(held: list[HeldStep]) -> str:
    """The current details' line: what waits for a person, and how to answer."""
    waiting = [h for h in held if h.decision == "waiting"]
    if not waiting:
        return ""
    first = waiting[0]
    return (
        f"step {', '.join(h.step_id for h in waiting)} waits for a person: {first.reasons[0] if first.reasons else ''}"
        " (`iter approve` / `iter deny`)"
    )


def topic_of(event: BaseModel) -> str:
    if isinstance(event, Tokens):
        return TOPIC_TOKENS
    if isinstance(event, OutputLines):
        return TOPIC_OUTPUT
    return TOPIC_EVENTS


def parse_event(data: bytes | str) -> LiveEvent:
    """One stream item's JSON as its typed event; raises ``pydantic.ValidationError`` on anything else."""
    return _ADAPTER.validate_json(data)


def clip(line: str) -> str:
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " [...]"
