"""What a round of execution leaves behind, and what the next round must do about it: pure rules
that both workflows apply, whatever the reviewer says.

A request (or a session iteration) runs its steps in rounds: the plan, then each fix round (the
reviewer's fix steps, the steps an earlier failure skipped, the plan's checks again). A PASS stands
only over a round in which every step ran and succeeded; a failed or skipped step is repaired only
by a later round that does."""

from __future__ import annotations

from models.plan import CommandStep, FileStep, Step, StepNode, VerifyStep, iter_nodes
from models.request import StepResult
from models.verification import untested_change


def unrepaired(last_round: list[StepResult]) -> list[StepResult]:
    """The steps of the last round that failed or never ran: a PASS cannot stand over them."""
    return [r for r in last_round if not r.ok]


def overruled_pass(last_round: list[StepResult]) -> str:
    """Why a PASS verdict cannot stand, or "" when it can."""
    bad = unrepaired(last_round)
    if not bad:
        return untested_change(last_round)
    return "; ".join(
        f"step {r.step_id} " + ("was skipped (it never ran)" if r.skipped else _failure(r)) for r in bad[:5]
    ) + ("; ..." if len(bad) > 5 else "")


def _failure(result: StepResult) -> str:
    if result.timed_out:
        return "timed out"
    return f"failed (exit {result.exit_code})" if result.exit_code is not None else "failed"


def skipped_steps(tree: list[StepNode], last_round: list[StepResult]) -> list[Step]:
    """The changes an earlier failure kept from running, in their order: they run (once, since they
    never did) after the fixes of the next round. Checks are left out: every round re-runs them."""
    by_id = {n.step.id: n.step for n in iter_nodes(tree)}
    out: list[Step] = []
    for r in last_round:
        step = by_id.get(r.step_id)
        if r.skipped and isinstance(step, CommandStep | FileStep) and step not in out:
            out.append(step)
    return out


def clashing_ids(fixes: list[Step], tree: list[StepNode]) -> list[str]:
    """Fix step ids (after iter's round prefix) that a step of the tree already has."""
    taken = {n.step.id for n in iter_nodes(tree)}
    return [s.id for s in fixes if s.id in taken]


def latest_outputs(results: list[StepResult]) -> list[StepResult]:
    """The results with only each step's last run carrying its output: an earlier run of a step is
    superseded (the reviewer reads only the last), so its output need not travel again. Every fix
    round re-runs the checks, and each output is up to ``executor.output_cap_bytes``: sent whole
    each round, the post review's input grew with the number of rounds."""
    last = {r.step_id: i for i, r in enumerate(results)}
    superseded = {i for i, r in enumerate(results) if last[r.step_id] != i and r.output}
    return [r.model_copy(update={"output": ""}) if i in superseded else r for i, r in enumerate(results)]


def checks(tree: list[StepNode]) -> list[VerifyStep]:
    """The plan's own checks, run again in every fix round."""
    return [n.step for n in tree if isinstance(n.step, VerifyStep)]
