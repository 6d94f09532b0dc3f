"""A PASS needs evidence from after the last change: the project's checks (verify steps) must have
run, and passed, after the last step that changed something. Pure, for both workflows (through
``models.rounds.overruled_pass``)."""

from __future__ import annotations

from models.request import StepResult


def untested_change(last_round: list[StepResult]) -> str:
    """Why the round's result is unverified (a change after the last passing check), or ""."""
    last_change = max(
        (i for i, r in enumerate(last_round) if r.kind in ("file", "command") and not r.skipped), default=-1
    )
    if last_change < 0:
        return ""
    checked = any(r.kind == "verify" and r.ok for r in last_round[last_change + 1 :])
    if checked:
        return ""
    step = last_round[last_change].step_id
    return f"no check (verify step) ran and passed after step {step}, the last change"
