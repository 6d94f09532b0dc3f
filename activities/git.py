"""Auto-commit: the files a session iteration changed, in one commit whose message names the task.

Never a push. "Changed by the iteration" means uncommitted now and different from what was
uncommitted before it (the baseline: a content digest per dirty path), so a user's own unfinished
edits stay out of iter's commits. iter's machine state (``.iter/runs``, ``.iter/live``) is never
committed. Each commit carries a marker trailer; a retried activity finds it and does not commit
twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from temporalio import activity

from models.session_io import GitCommitInput, GitCommitOutput, GitSnapshotOutput

MACHINE_STATE = (".iter/runs/", ".iter/live/")
DEFAULT_IDENTITY = ("-c", "user.name=iter", "-c", "user.email=iter@localhost")
ABSENT = "absent"


class GitError(Exception):
    pass


async def git(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
    )
    out, err = await proc.communicate(stdin)
    if proc.returncode != 0:
        lines = (err or out).decode(errors="replace").strip().splitlines()
        raise GitError(f"git {args[0]}: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return out.decode(errors="replace")


async def toplevel(workspace: Path) -> Path | None:
    try:
        return Path((await git(workspace, "rev-parse", "--show-toplevel")).strip())
    except (GitError, OSError):
        return None


def _machine_state(path: str) -> bool:
    return any(f"/{p}" in f"/{path}" for p in MACHINE_STATE)


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return ABSENT


async def dirty(top: Path, workspace: Path) -> dict[str, str]:
    """Uncommitted paths (relative to the repository root) under the workspace, with digests."""
    ws_prefix = os.path.relpath(workspace.resolve(), top.resolve())
    ws_prefix = "" if ws_prefix == "." else ws_prefix.rstrip("/") + "/"
    raw = await git(top, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ws_prefix or ".")
    entries = raw.split("\0")
    paths: list[str] = []
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        paths.append(path)
        if "R" in status or "C" in status:  # a rename's source follows it
            paths.append(entries[i])
            i += 1
    return {p: _digest(top / p) for p in dict.fromkeys(paths) if not _machine_state(p)}


async def snapshot(workspace: Path) -> GitSnapshotOutput:
    top = await toplevel(workspace)
    if top is None:
        return GitSnapshotOutput(is_repo=False, error=f"{workspace} is not in a git repository; nothing is committed")
    try:
        return GitSnapshotOutput(is_repo=True, dirty=await dirty(top, workspace))
    except GitError as exc:
        return GitSnapshotOutput(is_repo=True, error=str(exc))


async def _identity(top: Path) -> tuple[str, ...]:
    try:
        await git(top, "config", "user.email")
        return ()
    except GitError:
        return DEFAULT_IDENTITY


async def _already_committed(top: Path, marker: str) -> GitCommitOutput | None:
    try:
        head = await git(top, "log", "-1", "--format=%H%n%B")
    except GitError:
        return None  # no commit yet
    sha, _, body = head.partition("\n")
    if marker not in body.splitlines():
        return None
    files = (await git(top, "show", "--name-only", "--format=", sha)).split()
    return GitCommitOutput(commit=sha, files=files)


async def commit(inp: GitCommitInput) -> GitCommitOutput:
    workspace = Path(inp.workspace)
    top = await toplevel(workspace)
    if top is None:
        return GitCommitOutput(skipped=f"{workspace} is not in a git repository")
    done = await _already_committed(top, inp.marker)
    now = await dirty(top, workspace)
    if done is not None:
        return done.model_copy(update={"baseline": now})
    changed = sorted(p for p, digest in now.items() if inp.baseline.get(p) != digest)
    if not changed:
        return GitCommitOutput(skipped="nothing changed", baseline=now)
    spec = b"\0".join(p.encode() for p in changed) + b"\0"
    identity = await _identity(top)
    await git(top, "add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul", stdin=spec)
    message = f"{inp.message.rstrip()}\n\n{inp.marker}\n"
    await git(
        top, *identity, "commit", "-q", "-m", message, "--pathspec-from-file=-", "--pathspec-file-nul", stdin=spec
    )
    sha = (await git(top, "rev-parse", "HEAD")).strip()
    return GitCommitOutput(commit=sha, files=changed, baseline=await dirty(top, workspace))


@activity.defn
async def git_snapshot(workspace: str) -> GitSnapshotOutput:
    return await snapshot(Path(workspace))


@activity.defn
async def git_commit(inp: GitCommitInput) -> GitCommitOutput:
    try:
        return await commit(inp)
    except (GitError, OSError) as exc:
        # A refused commit (a pre-commit hook, a locked index) is reported; the session goes on.
        return GitCommitOutput(error=str(exc), baseline=inp.baseline)
