"""The reviewer's two contracts: the safety review before execution, and the verdict after it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.plan import Step, check_unique_ids

SAFETY_POINTS: dict[int, str] = {
    1: "paths stay inside the workspace",
    2: "no destructive operations",
    3: "no secrets in content or commands",
    4: "dependencies from trusted sources only",
    5: "no network access",
    6: "no privilege escalation",
    7: "bounded resources and liveness",
    8: "consistent plan",
}


class SafetyCheck(BaseModel):
    point: int = Field(ge=1, le=8)
    name: str
    ok: bool
    reason: str


class SafetyReview(BaseModel):
    model_config = ConfigDict(title="safety_review")

    verdict: Literal["PASS", "BLOCK"]
    checks: list[SafetyCheck]
    blocked_steps: list[str] = Field(default_factory=list)


Verdict = Literal["block", "hold"]


class Finding(BaseModel):
    """One reason a step may not run, from the deterministic rules or from the reviewer model.

    ``block``: the step never runs as planned. ``hold``: risky but plausibly legitimate (deleting a
    directory, installing a package, network, code the rules cannot read, weaker tests): a person
    decides, or the project's hold mode does (see ``models.holds``)."""

    point: int = Field(ge=1, le=8)
    step_id: str
    reason: str
    source: Literal["rules", "reviewer", "user"] = "rules"
    verdict: Verdict = "block"

    def line(self) -> str:
        held = "held: " if self.verdict == "hold" else ""
        return f"point {self.point} ({SAFETY_POINTS[self.point]}), step {self.step_id}: {held}{self.reason}"


class Criterion(BaseModel):
    criterion: str
    met: bool
    evidence: str


class InfoRequest(BaseModel):
    kind: Literal["read_file", "run"]
    target: str


class PostReview(BaseModel):
    model_config = ConfigDict(title="post_review")

    verdict: Literal["PASS", "FAIL", "INFO_NEEDED"]
    criteria: list[Criterion] = Field(default_factory=list)
    fix_steps: list[Step] = Field(default_factory=list)
    info_requests: list[InfoRequest] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_fix_ids(self) -> PostReview:
        check_unique_ids(self.fix_steps)
        return self
