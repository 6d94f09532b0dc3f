"""Runs every rule over a list of steps."""

from __future__ import annotations

from pathlib import Path

from models.plan import CommandStep, FileStep, Step, VerifyStep
from models.policy.paths import check_path
from models.review import Finding


def evaluate_steps(
    steps: list[Step], workspace: Path, policy: object | None = None, require_verify: bool = True
) -> list[Finding]:
    findings: list[Finding] = []
    for step in steps:
        if isinstance(step, FileStep):
            reason = check_path(step.path, workspace)
            if reason:
                findings.append(Finding(point=1, step_id=step.id, reason=reason))
        elif isinstance(step, CommandStep | VerifyStep) and not step.command.strip():
            findings.append(Finding(point=7, step_id=step.id, reason="empty command"))
    if require_verify and steps and not any(isinstance(s, VerifyStep) for s in steps):
        findings.append(Finding(point=8, step_id=steps[-1].id, reason="the plan has no verify step"))
    return findings


def load_policy(workspace: Path) -> object:
    return None


def network_steps(steps: list[Step], policy: object) -> set[str]:
    return set()
