"""Settling the gate's holds inside a workflow, written once for RequestWorkflow and
SessionWorkflow: ask a person and wait for the ``approve``/``deny`` updates, block, or allow,
as the hold mode says (see ``models.holds``). Deterministic: no I/O here."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.holds import (
        HeldStep,
        HoldDecision,
        HoldMode,
        HoldState,
        as_blocks,
        decide,
        denials,
        held_steps,
        refuse_decision,
        remember_approvals,
        split,
    )
    from models.plan import Step
    from models.review import Finding


class HoldRefused(ValueError):
    """An approve/deny that cannot apply; raised by the update validators, so it never reaches history."""


async def settle(
    state: HoldState,
    findings: list[Finding],
    steps: list[Step],
    mode: HoldMode,
    say: Callable[[str], None],
    give_up: Callable[[], str] = lambda: "",
    on_change: Callable[[list[HeldStep]], None] = lambda held: None,
) -> list[Finding]:
    """The findings that still stop the steps once holds are settled; empty: they may run.
    ``give_up`` says why nobody will decide any more (a stopped session): what still waits is denied.
    ``on_change`` hears of the held steps when they start waiting and once they are decided (the
    live view)."""
    blocks, holds = split(findings, steps, state.approved)
    state.mode = mode
    if not holds:
        return blocks
    if blocks:
        return [*blocks, *holds]  # the plan goes back anyway: nobody is asked about half of it
    if mode == "allow":
        say(f"{len(holds)} held finding(s) allowed by the project's hold mode 'allow'")
        return []
    if mode == "block":
        return as_blocks(holds, "hold mode is 'block', so nobody is asked")
    state.held = held_steps(holds, steps)
    ids = ", ".join(h.step_id for h in state.held)
    first = state.held[0].reasons[0]
    say(f"held for a person: step(s) {ids}: {first} -- `iter approve ID [STEP]` or `iter deny ID [STEP] --reason ...`")
    on_change(state.held)
    await workflow.wait_condition(lambda: not state.waiting or bool(give_up()))
    if state.waiting:
        decide(state.held, "", "denied", give_up())
    on_change(state.held)
    state.approved = remember_approvals(state.approved, state.held)
    denied = denials(state.held, holds)
    decided = ", ".join(f"{h.step_id} {h.decision}" for h in state.held)
    say(f"decided by a person: {decided}")
    return denied


def check(state: HoldState, decision: HoldDecision) -> None:
    """The approve/deny validator."""
    if why := refuse_decision(state.held, decision.step):
        raise HoldRefused(why)


def apply(state: HoldState, decision: HoldDecision, approve: bool) -> str:
    done = decide(state.held, decision.step, "approved" if approve else "denied", decision.reason)
    return f"{'approved' if approve else 'denied'}: {', '.join(done)}"
