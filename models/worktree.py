"""Where a request's (or a session's) steps run, and how their change reaches the user's checkout.

Each request works in a git worktree of its own, on branch ``iter/<request>``, so the user's
checkout is untouched while it runs and two requests of one project never share files. A folder
that is not a git repository gets a snapshot copy, tracked by a private repository of iter's
(``.iter/snapshot.git``), so that diff, apply and discard work the same way. When the request
passes, its change lands according to ``worktree.mode``: ``apply`` (the files, uncommitted, in the
checkout), ``commit`` (the same, then one commit on the user's branch) or ``branch`` (left on
``iter/<request>`` for ``iter apply``). Pure contracts and naming rules: no I/O here."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from models.config import ApplyMode, Settings

SandboxKind = Literal["worktree", "snapshot", "checkout"]
Landing = Literal["applied", "committed", "branch", "kept", "discarded", "unchanged", "refused", "none"]
BRANCH_PREFIX = "iter/"
BASE_REF_PREFIX = "refs/iter/base/"
SNAPSHOT_GIT_DIR = ".iter/snapshot.git"
# iter's machine state never travels between a worktree and the checkout.
MACHINE_STATE = (".iter/runs", ".iter/live", SNAPSHOT_GIT_DIR)


def ref_name(item: str) -> str:
    """A request id or session name as one valid git ref component."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", item).strip(".-")
    safe = re.sub(r"\.{2,}", ".", safe)
    if safe.endswith(".lock"):
        safe = safe[: -len(".lock")] + "-lock"
    return safe or "item"


def branch_for(item: str) -> str:
    return BRANCH_PREFIX + ref_name(item)


def base_ref_for(item: str) -> str:
    return BASE_REF_PREFIX + ref_name(item)


class Sandbox(BaseModel):
    """Where one request's steps run; every host-side read of the request uses ``path`` too."""

    kind: SandboxKind
    origin: str = Field(description="The user's project folder, which only a landing changes")
    path: str = Field(description="The steps' workspace: the worktree (or its project subfolder)")
    root: str = Field(default="", description="The worktree's top folder")
    git_dir: str = Field(default="", description="The repository's git directory (or the snapshot's)")
    origin_top: str = Field(default="", description="The top of the user's checkout: paths are relative to it")
    branch: str = ""
    base: str = Field(default="", description="The commit the branch started from: the checkout as it was")
    home: str = Field(default="", description="iter's folder for this sandbox (its records; the worktree in it)")


class PrepareInput(BaseModel):
    origin: str
    item: str = Field(description="The request id or session name: names the branch")
    run_key: str = Field(description="The run the sandbox belongs to: a retried attempt finds it")
    settings: Settings
    checkout: bool = Field(default=False, description="Work in the user's checkout itself (sessions, when configured)")
    resume: bool = Field(default=False, description="An existing branch of this item is taken up (sessions)")


class LandInput(BaseModel):
    sandbox: Sandbox
    passed: bool
    mode: ApplyMode = "apply"
    message: str = Field(description="The commit message of the result")


class LandOutput(BaseModel):
    landing: Landing = "none"
    result: str = Field(default="", description="The branch's last commit, when it holds a change")
    files: list[str] = Field(default_factory=list)
    message: str = Field(default="", description="One line for the user")
