"""``iter diff``, ``iter apply`` and ``iter discard``: what a request (or session) changed on its
branch ``iter/<ID>``, landing it in the checkout, or dropping it. Nothing here talks to Temporal:
the branch in the repository (or the snapshot's, ``.iter/snapshot.git``) is the whole record."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import typer

from activities.git import GitError
from activities.worktree import SandboxError
from activities.worktree import apply as apply_branch
from activities.worktree import diff as diff_branch
from activities.worktree import discard as discard_branch
from cli import project_store as store
from cli.output import console, fail, ok, print_json

T = TypeVar("T")


def _origin() -> Path:
    """The project folder (where ``iter orchestrate`` ran), or, for a session, the current folder."""
    return store.find_root() or Path.cwd()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except (SandboxError, GitError) as exc:
        fail(str(exc))


def diff(
    target: str = typer.Argument(..., help="A request id (req_01) or a session name."),
    stat: bool = typer.Option(False, "--stat", help="Only the files and line counts."),
) -> None:
    """Show what a request changed on its branch iter/<ID> (while it runs: its worktree as it is now)."""
    text = _run(diff_branch(_origin(), target, stat_only=stat))
    if not text:
        console.print(f"{target} changed nothing")
        return
    sys.stdout.write(text)


def apply(
    target: str = typer.Argument(..., help="A request id (req_01) or a session name."),
    commit: bool = typer.Option(False, "--commit", help="Also commit the change on your current branch."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Land the change of iter/<ID> in your checkout; refused, changing nothing, where you edited its files."""
    out = _run(apply_branch(_origin(), target, "commit" if commit else "apply"))
    if as_json:
        print_json(out)
    elif out.landing in ("applied", "committed", "unchanged"):
        ok(out.message)
    else:
        fail(out.message)
    if out.landing == "refused":
        raise typer.Exit(1)


def discard(
    target: str = typer.Argument(..., help="A request id (req_01) or a session name."),
    force: bool = typer.Option(False, "--force", help="Also remove the worktree of a run that died without landing."),
) -> None:
    """Drop the change of iter/<ID>: the branch goes, your checkout stays as it is."""
    out = _run(discard_branch(_origin(), target, force=force))
    ok(out.message)
