"""Held steps: what the gate found risky but plausibly legitimate, and what a person decided.

Pure logic shared by RequestWorkflow and SessionWorkflow (deterministic: no I/O). A hold is
settled by the hold mode:

- ``ask``: the step waits for ``iter approve ID [STEP]`` or ``iter deny ID [STEP] --reason TEXT``;
- ``block``: the hold becomes a block, with its reason (the default of ``--headless`` sessions, so
  an unattended session moves on to its next task instead of waiting for nobody);
- ``allow``: the hold is lifted (a trusted project).

An approval is of a step's content, not of its id: a later review of the same step (a fix round
re-running the plan's checks) does not ask again, and a step changed under the same id does.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, Field

from models.plan import Step, step_to_dict
from models.review import Finding

HoldMode = Literal["ask", "block", "allow"]
Decision = Literal["waiting", "approved", "denied"]
MAX_APPROVALS_KEPT = 200  # bounded state: older approvals are asked again, never granted silently


class HeldStep(BaseModel):
    """A step waiting for a person (or decided by one), with the gate's reasons."""

    step_id: str
    reasons: list[str]
    digest: str = Field(description="sha256 of the step's content: what the decision is about")
    decision: Decision = "waiting"
    note: str = Field(default="", description="The reason a person gave for a denial")


class HoldDecision(BaseModel):
    """The argument of the ``approve`` and ``deny`` updates. ``step`` empty: every waiting step."""

    step: str = ""
    reason: str = ""


def step_digest(step: Step) -> str:
    return hashlib.sha256(json.dumps(step_to_dict(step), sort_keys=True).encode()).hexdigest()


def effective_mode(project_mode: HoldMode | None, run_mode: HoldMode | None) -> HoldMode:
    """The project's ``.iter/policy.yaml`` wins; else what the run asked for (``block`` for
    ``--headless`` sessions); else ``ask``."""
    return project_mode or run_mode or "ask"


def split(findings: list[Finding], steps: list[Step], approved: list[str]) -> tuple[list[Finding], list[Finding]]:
    """(blocking findings, holds still to decide): holds on a step whose content was approved are gone."""
    by_id = {s.id: step_digest(s) for s in steps}
    blocks = [f for f in findings if f.verdict != "hold"]
    holds = [f for f in findings if f.verdict == "hold" and by_id.get(f.step_id) not in approved]
    return blocks, holds


def held_steps(holds: list[Finding], steps: list[Step]) -> list[HeldStep]:
    """One entry per held step, in plan order, with all its reasons."""
    out: list[HeldStep] = []
    for step in steps:
        reasons = [f.line() for f in holds if f.step_id == step.id]
        if reasons:
            out.append(HeldStep(step_id=step.id, reasons=reasons, digest=step_digest(step)))
    known = {s.id for s in steps}
    stray = [f.line() for f in holds if f.step_id not in known]  # a reviewer's "*": the plan as a whole
    if stray:
        out.append(HeldStep(step_id="*", reasons=stray, digest="*"))
    return out


def as_blocks(holds: list[Finding], why: str) -> list[Finding]:
    """Holds turned into blocks (hold mode ``block``): the reason says why nobody was asked."""
    return [f.model_copy(update={"verdict": "block", "reason": f"{f.reason} ({why})"}) for f in holds]


def refuse_decision(held: list[HeldStep], step: str) -> str | None:
    """Why an approve/deny cannot apply (the update's validator), or None."""
    waiting = [h.step_id for h in held if h.decision == "waiting"]
    if not waiting:
        return "no step is waiting for a decision"
    if step and step not in waiting:
        return f"step {step!r} is not waiting for a decision; waiting: {', '.join(waiting)}"
    return None


def decide(held: list[HeldStep], step: str, decision: Decision, note: str = "") -> list[str]:
    """Record a decision for ``step`` (every waiting step when empty); the ids it applied to."""
    done = []
    for h in held:
        if h.decision == "waiting" and (not step or h.step_id == step):
            h.decision, h.note = decision, note
            done.append(h.step_id)
    return done


def denials(held: list[HeldStep], findings: list[Finding]) -> list[Finding]:
    """Blocking findings for the denied steps: the person's reason first, then the gate's."""
    out = []
    for h in held:
        if h.decision != "denied":
            continue
        point = next((f.point for f in findings if f.step_id == h.step_id), 8)
        why = h.note or "no reason given"
        out.append(Finding(point=point, step_id=h.step_id, reason=f"denied by a person: {why}", source="user"))
    return out


def remember_approvals(approved: list[str], held: list[HeldStep]) -> list[str]:
    kept = [*approved, *(h.digest for h in held if h.decision == "approved" and h.digest not in approved)]
    return kept[-MAX_APPROVALS_KEPT:]


class HoldState(BaseModel):
    """What a workflow keeps about holds: the current review's held steps, and past approvals."""

    mode: HoldMode | None = Field(default=None, description="The mode the last review settled holds with")
    held: list[HeldStep] = Field(default_factory=list)
    approved: list[str] = Field(default_factory=list, description="Digests of step contents a person approved")

    @property
    def waiting(self) -> list[HeldStep]:
        return [h for h in self.held if h.decision == "waiting"]
