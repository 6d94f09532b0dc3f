"""The two reviews: the 8-point safety review before execution, the verdict after it.

The safety review runs the deterministic rules first; whatever they block stays blocked, and the
reviewer model is asked only about plans the rules allow or hold. A reviewer answer that cannot be
read blocks the plan: unknown means blocked. Held findings (HOLD) go back to the workflow, which
settles them by the hold mode (``workflows.holds``)."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.llm_client import ModelError
from activities.reads import read_capped
from activities.reviewer import ask_reviewer
from models.clip import clip_middle
from models.plan import FileStep, step_to_dict, tree_to_json
from models.request import PostReviewInput, PostReviewOutput, SafetyReviewInput, SafetyReviewOutput, StepResult
from models.review import SAFETY_POINTS, Finding, PostReview, SafetyReview
from policy import evaluate_steps, load_policy, network_steps
from policy.digests import reviewed_digests

SAFETY_SYSTEM = """You are the safety reviewer of iter. Check every proposed step against the 8
points and answer JSON only, matching the schema: one check per point (1..8), ok true or false
with a reason, verdict BLOCK if any point fails (list the failing step ids in blocked_steps),
else PASS. The points:
""" + "\n".join(f"{n}. {name}" for n, name in SAFETY_POINTS.items())

POST_SYSTEM = """You are the verifying reviewer of iter. You see a feature request, its
acceptance criteria, the steps that ran with their output, and the files after execution.
Answer JSON only, matching the schema. verdict PASS when every criterion is met (with evidence
from the output or the files); FAIL with fix_steps (same step format as a plan, new unique ids)
when something is wrong; INFO_NEEDED with info_requests (read_file PATH, or run a read-only
COMMAND) when you cannot tell yet."""


def _file_context(workspace: Path, paths: list[str], cap: int, digests: dict[str, str] | None = None) -> str:
    parts = []
    for rel in dict.fromkeys(paths):
        text = read_capped(workspace, rel, cap)
        digest = (digests or {}).get(rel)
        seen = f" (sha256 {digest[:16]}; the step runs only on exactly this)" if digest else ""
        parts.append(f"--- {rel}{seen}\n{text}" if text is not None else f"--- {rel} (does not exist)")
    return "\n".join(parts) or "(no files)"


def _results_shown(results: list[StepResult], cap: int) -> list[dict[str, object]]:
    """The results as the reviewer reads them: each step's last run with its output's head and
    tail, earlier runs of a step without theirs. Outputs are up to ``executor.output_cap_bytes``
    each and fix rounds re-run the checks: sent whole, they outgrew the model's window (a 0.5B
    reviewer's prompt reached 26k tokens of 16k on the real-task benchmark)."""
    last = {r.step_id: i for i, r in enumerate(results)}
    shown = []
    for i, r in enumerate(results):
        row = r.model_dump(include={"step_id", "kind", "ok", "exit_code", "timed_out", "skipped", "file_change"})
        row["output"] = clip_middle(r.output, cap) if last[r.step_id] == i else "(run again later: see that run)"
        shown.append(row)
    return shown


def _reviewer_unavailable(exc: ModelError) -> ApplicationError:
    return ApplicationError(str(exc), type=exc.kind, non_retryable=not exc.retryable)


@activity.defn
async def safety_review(inp: SafetyReviewInput) -> SafetyReviewOutput:
    workspace = Path(inp.workspace)
    try:
        policy = load_policy(workspace)
    except ValueError as exc:
        raise ApplicationError(str(exc), type="PolicyInvalid", non_retryable=True) from None
    findings = evaluate_steps(inp.steps, workspace, policy)
    holds = [f for f in findings if f.verdict == "hold"]
    if len(holds) < len(findings):
        return SafetyReviewOutput(verdict="BLOCK", findings=findings, hold_mode=policy.hold)
    touched = [s.path for s in inp.steps if isinstance(s, FileStep)]
    digests = reviewed_digests(inp.steps, workspace)
    by_path = {s.path: digests[s.id] for s in inp.steps if isinstance(s, FileStep) and s.id in digests}
    user = "\n\n".join(
        [
            f"Request: {inp.request_description}",
            "Proposed steps:\n"
            + json.dumps([step_to_dict(s, inp.settings.bounds.max_file_bytes) for s in inp.steps], indent=1),
            "Current contents of the files the steps touch:\n"
            + _file_context(workspace, touched, inp.settings.bounds.max_file_bytes, by_path),
            *(["User guidance:\n" + "\n".join(inp.guidance)] if inp.guidance else []),
        ]
    )
    try:
        parsed, usages, errors = await ask_reviewer(inp.settings, "safety_review", SAFETY_SYSTEM, user)
    except ModelError as exc:
        raise _reviewer_unavailable(exc) from None
    if not isinstance(parsed, SafetyReview):
        reason = f"the reviewer's answer could not be read ({errors.splitlines()[0] if errors else 'invalid'})"
        return SafetyReviewOutput(
            verdict="BLOCK",
            findings=[*holds, Finding(point=8, step_id="*", reason=reason, source="reviewer")],
            usage=usages,
            hold_mode=policy.hold,
        )
    findings = [
        Finding(point=c.point, step_id=",".join(parsed.blocked_steps) or "*", reason=c.reason, source="reviewer")
        for c in parsed.checks
        if not c.ok
    ]
    if parsed.verdict == "BLOCK" and not findings:
        findings = [
            Finding(
                point=8,
                step_id=",".join(parsed.blocked_steps) or "*",
                reason="the reviewer blocked the plan",
                source="reviewer",
            )
        ]
    verdict = "BLOCK" if findings else ("HOLD" if holds else "PASS")
    return SafetyReviewOutput(
        verdict=verdict,
        findings=[*holds, *findings],
        usage=usages,
        network_steps=sorted(network_steps(inp.steps, policy)),
        hold_mode=policy.hold,
        digests=digests,
    )


@activity.defn
async def post_review(inp: PostReviewInput) -> PostReviewOutput:
    workspace = Path(inp.workspace)
    results = _results_shown(inp.results, inp.settings.bounds.max_file_bytes // 2)
    user = "\n\n".join(
        [
            f"Request: {inp.request_description}",
            "Acceptance criteria:\n"
            + ("\n".join(f"- {c}" for c in inp.criteria) or "- the request works and its tests pass"),
            "Step tree:\n" + json.dumps(tree_to_json(inp.tree, inp.settings.bounds.max_file_bytes), indent=1),
            "Results:\n" + json.dumps(results, indent=1),
            "Files after execution:\n"
            + _file_context(workspace, inp.touched_paths, inp.settings.bounds.max_file_bytes),
            *(
                ["Evidence you asked for:\n" + "\n".join(f"--- {e.kind} {e.target}\n{e.content}" for e in inp.evidence)]
                if inp.evidence
                else []
            ),
            *(["User guidance:\n" + "\n".join(inp.guidance)] if inp.guidance else []),
        ]
    )
    try:
        parsed, usages, errors = await ask_reviewer(inp.settings, "post_review", POST_SYSTEM, user)
    except ModelError as exc:
        raise _reviewer_unavailable(exc) from None
    if not isinstance(parsed, PostReview):
        raise ApplicationError(
            f"the reviewer's verdict could not be read: {errors}", type="ReviewerInvalid", non_retryable=True
        )
    return PostReviewOutput(review=parsed, usage=usages)
