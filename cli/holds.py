"""``iter approve`` and ``iter deny``: a person's decision on the steps the gate held.

Both are Temporal updates whose validators refuse a decision that cannot apply (nothing held, a
step that is not waiting) before anything reaches history. ``print_held`` shows what waits, for
``iter status``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import typer
from rich.markup import escape
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from cli import runtime
from cli.output import console, fail, ok
from cli.targets import workflow_id_for
from models.holds import HoldDecision

RPC_TIMEOUT = timedelta(seconds=30)


def approve(
    target: str = typer.Argument(..., help="A request id (req_01), session name or workflow id."),
    step: str = typer.Argument("", help="The held step's id; none: every step that waits."),
) -> None:
    """Let a held step run: the gate found it risky but plausibly legitimate."""
    ok(_decide(target, "approve", HoldDecision(step=step)))


def deny(
    target: str = typer.Argument(..., help="A request id (req_01), session name or workflow id."),
    step: str = typer.Argument("", help="The held step's id; none: every step that waits."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why: the coder reads it when it plans again."),
) -> None:
    """Refuse a held step; a request plans again with your reason, a session blocks the task."""
    if not reason.strip():
        fail("give a reason with --reason: the coder reads it when it plans again")
    ok(_decide(target, "deny", HoldDecision(step=step, reason=reason.strip())))


def _decide(target: str, name: str, decision: HoldDecision) -> str:
    async def go() -> str:
        cfg = runtime.settings()
        client = await runtime.client_for(cfg)
        handle = client.get_workflow_handle(workflow_id_for(target))
        try:
            done = await handle.execute_update(name, decision, result_type=str, rpc_timeout=RPC_TIMEOUT)
        except WorkflowUpdateFailedError as exc:
            fail(f"{handle.id}: {getattr(exc.cause, 'message', None) or exc.cause}; `iter status {target}` shows it")
        except RPCError as exc:
            fail(f"{handle.id}: {exc.message}; `iter status` lists what runs")
        return f"{handle.id}: {done}"

    return runtime.run(go())


def print_held(state: dict[str, Any]) -> None:
    """The steps that wait for a person, with why and what to type; and decisions already made."""
    holds = state.get("holds") or {}
    target = state.get("request_id") or state.get("name") or state.get("workflow_id", "ID")
    for held in holds.get("held") or []:
        if held["decision"] == "waiting":
            console.print(f"  [bold yellow]held[/bold yellow] step {escape(held['step_id'])} waits for a person:")
            for reason in held["reasons"]:
                console.print(f"    {escape(reason)}", soft_wrap=True)
            console.print(
                f"    `iter approve {target} {held['step_id']}` or "
                f"`iter deny {target} {held['step_id']} --reason TEXT`",
                markup=False,
            )
        else:
            note = f" ({held['note']})" if held.get("note") else ""
            console.print(f"  held step {escape(held['step_id'])}: {held['decision']}{escape(note)}")
