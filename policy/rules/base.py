"""What every rule gets and gives: a context in, hits out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from policy.config import Policy
from policy.invocation import Invocation


@dataclass(frozen=True)
class Hit:
    point: int
    reason: str
    # the normalized simple command the hit is about: project allow rules match it. None for hits
    # about the step as a whole (unparseable, timeouts...), which no allow rule can lift.
    command: str | None = None
    # risky but plausibly legitimate: a person decides (see models.holds); False: blocked
    hold: bool = False


@dataclass(frozen=True)
class Context:
    root: Path  # the workspace, real path
    policy: Policy


def hit(inv: Invocation, point: int, reason: str, hold: bool = False) -> Hit:
    where = f" (inside {inv.via})" if inv.via else ""
    return Hit(point, f"{reason}{where}", inv.normalized, hold)


def show(inv: Invocation) -> str:
    """The command as a reader recognises it, shortened: `rm -rf build`."""
    text = inv.normalized.replace("\n", " ")
    return f"`{text if len(text) <= 60 else text[:57] + '...'}`"


def stdin_given(inv: Invocation) -> bool:
    """Something feeds the command's standard input (a pipe, a file, a here-document)."""
    return inv.cmd.pipe_in or any(r.op in ("<", "<<", "<<-", "<<<", "<>") for r in inv.cmd.redirects)
