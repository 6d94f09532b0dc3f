"""Every git command iter runs on the host goes through ``git()`` here, and auto-commit.

Why one helper: a repository can configure git to run programs (hooks, ``core.fsmonitor``, external
diff and textconv drivers, clean/smudge/process filters, pagers, editors, credential helpers, gpg),
and a step, or anyone who wrote into ``.git/config`` by hand, could plant such a setting for iter's
next ``git status`` on the host. So each call runs with a scrubbed environment (no ``GIT_*`` of the
caller, no system or global config, ``HOME`` an empty directory) and command-line overrides, which
beat every config file, for each setting that can execute something, including the drivers the
repository's config names (read first with ``git config --list``, which runs nothing).

Auto-commit: the files a session iteration changed, in one commit whose message names the task.
Never a push. "Changed by the iteration" means uncommitted now and different from what was
uncommitted before it (the baseline: a content digest per dirty path), so a user's own unfinished
edits stay out of iter's commits. iter's machine state (``.iter/runs``, ``.iter/live``) is never
committed. Each commit carries a marker trailer; a retried activity finds it and does not commit
twice.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from temporalio import activity

from models.session_io import GitCommitInput, GitCommitOutput, GitSnapshotOutput

MACHINE_STATE = (".iter/runs/", ".iter/live/")
DEFAULT_IDENTITY = ("-c", "user.name=iter", "-c", "user.email=iter@localhost")
ABSENT = "absent"
GIT_TIMEOUT_S = 300.0  # an ``include.path`` naming a FIFO must not hang a worker forever

# Settings that run a program, set on the command line (which wins over every config file) to
# something that runs nothing. ``safe.directory=*`` is safe only because of the rest of this list:
# a root worker reads repositories its users own.
HARDENED_CONFIG: tuple[str, ...] = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.pager=cat",
    "core.editor=false",
    "sequence.editor=false",
    "core.askPass=",
    "core.sshCommand=false",
    "core.gitProxy=",
    "core.attributesFile=/dev/null",
    "core.alternateRefsCommand=",
    "credential.helper=",
    "diff.external=",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "gpg.program=false",
    "log.showSignature=false",
    "submodule.recurse=false",
    "diff.ignoreSubmodules=all",
    "status.submoduleSummary=false",
    "protocol.allow=never",
    "uploadpack.packObjectsHook=",
    "safe.directory=*",
)
# Per-driver settings a repository config can define under any name: <section>.<name>.<key>.
DRIVER_KEYS: dict[str, dict[str, str]] = {
    "filter": {"clean": "", "smudge": "", "process": "", "required": "false"},
    "diff": {"command": "", "textconv": ""},
    "merge": {"driver": "false"},
    "credential": {"helper": ""},
    "gpg": {"program": "false"},
}
DRIVER_SETTING = re.compile(r"^(filter|diff|merge|credential|gpg)\.(.+)\.([a-z]+)$")
NO_DRIVERS = ("--no-ext-diff", "--no-textconv")  # diff, show and log never run a diff driver
# Plumbing that never runs a filter or a diff, merge, credential or gpg driver (unless asked to
# with one of DRIVING): the config need not be read first. The fixed overrides still apply.
NO_DRIVER_COMMANDS = {
    "rev-parse", "cat-file", "ls-tree", "diff-tree", "rev-list", "config", "update-ref",
    "commit-tree", "init", "for-each-ref", "show-ref", "symbolic-ref",
}  # fmt: skip
DRIVING = {"--filters", "--textconv", "-p", "--patch", "-S", "--gpg-sign"}
DIFFING = {"diff", "show", "log"}
PASSED_ENV = ("PATH", "LANG", "TZ")


class GitError(Exception):
    pass


@functools.cache
def empty_home() -> str:
    """An empty directory of this process's own: git finds no ~/.gitconfig, no XDG config in it."""
    return tempfile.mkdtemp(prefix="iter-git-home-")


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(
        {
            "HOME": empty_home(),
            "XDG_CONFIG_HOME": empty_home(),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_OPTIONAL_LOCKS": "0",
            "LC_ALL": "C",
        }
    )
    env.update(extra or {})
    return env


def _overrides(config_names: list[str]) -> list[str]:
    """``-c`` pairs neutralising every driver that the repository's config defines."""
    pairs = [*HARDENED_CONFIG]
    for name in config_names:
        match = DRIVER_SETTING.match(name)
        if not match:
            continue
        section, driver, _ = match.groups()
        if "=" in driver or "\n" in driver:
            raise GitError(f"the repository config defines a {section} driver iter cannot neutralise ({driver!r})")
        pairs += [f"{section}.{driver}.{key}={value}" for key, value in DRIVER_KEYS[section].items()]
    return [arg for pair in pairs for arg in ("-c", pair)]


async def _exec(
    cwd: Path, argv: list[str], stdin: bytes | None, env: dict[str, str], timeout: float
) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "git",
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except (TimeoutError, asyncio.CancelledError):
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out, err


async def git_bytes(
    cwd: Path,
    *args: str,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    git_dir: Path | None = None,
    work_tree: Path | None = None,
    check: bool = True,
    timeout: float = GIT_TIMEOUT_S,
) -> tuple[int, bytes]:
    """Run ``git args`` hardened (see the module's docstring); stdout as bytes, with the exit code."""
    env = git_env(env)
    where: list[str] = []
    if git_dir is not None:
        where += ["--git-dir", str(git_dir)]
    if work_tree is not None:
        where += ["--work-tree", str(work_tree)]
    base = ["--no-pager", *where, *_overrides([])]
    configured: list[str] = []
    if not args or args[0] not in NO_DRIVER_COMMANDS or DRIVING & set(args):
        code, names, _ = await _exec(cwd, [*base, "config", "--list", "--name-only", "-z"], None, env, timeout)
        configured = names.decode(errors="replace").split("\0") if code == 0 else []
    argv = ["--no-pager", *where, *_overrides(configured), *args]
    if args and args[0] in DIFFING:
        argv[len(argv) - len(args) + 1 : len(argv) - len(args) + 1] = list(NO_DRIVERS)
    code, out, err = await _exec(cwd, argv, stdin, env, timeout)
    if check and code != 0:
        lines = (err or out).decode(errors="replace").strip().splitlines()
        raise GitError(f"git {args[0] if args else ''}: {lines[-1] if lines else f'exit {code}'}")
    return code, out


async def git(cwd: Path, *args: str, **kw: Any) -> str:
    """``git_bytes`` decoded (same options); raises ``GitError`` with git's last line when it fails."""
    _, out = await git_bytes(cwd, *args, **kw)
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


async def identity(top: Path) -> tuple[str, ...]:
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


async def commit_paths(top: Path, paths: list[str], message: str) -> str:
    """Commit exactly ``paths`` (as they are in the working tree) on the current branch; the sha."""
    spec = b"\0".join(p.encode() for p in paths) + b"\0"
    who = await identity(top)
    await git(top, "add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul", stdin=spec)
    await git(
        top,
        *who,
        "commit",
        "-q",
        "--no-verify",
        "-m",
        message,
        "--pathspec-from-file=-",
        "--pathspec-file-nul",
        stdin=spec,
    )
    return (await git(top, "rev-parse", "HEAD")).strip()


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
    sha = await commit_paths(top, changed, f"{inp.message.rstrip()}\n\n{inp.marker}\n")
    return GitCommitOutput(commit=sha, files=changed, baseline=await dirty(top, workspace))


@activity.defn
async def git_snapshot(workspace: str) -> GitSnapshotOutput:
    return await snapshot(Path(workspace))


@activity.defn
async def git_commit(inp: GitCommitInput) -> GitCommitOutput:
    try:
        return await commit(inp)
    except (GitError, OSError) as exc:
        # A refused commit (a locked index) is reported; the session goes on.
        return GitCommitOutput(error=str(exc), baseline=inp.baseline)
