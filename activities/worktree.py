"""A worktree of its own for each request (and session), and the landing of its change.

``prepare_workspace`` runs first in a request: it records the user's checkout as it is now
(uncommitted and untracked files included, through a temporary index, so the user's own index and
files are untouched) as the base commit, and checks it out on ``iter/<request>`` in a new worktree
under the data dir. A folder that is not in a git repository is tracked by a private repository
of iter's, ``.iter/snapshot.git``, and gets a worktree of that: a snapshot copy with the same
diff, apply and discard. The activity is idempotent: a retried attempt finds the sandbox its run
made (``sandbox.json``), or clears what a dead attempt half made (``claim``) and makes it again.

``land_workspace`` runs last: the worktree's state becomes a commit on the branch, the worktree
folder goes, and a passed request's change lands in the checkout as ``worktree.mode`` says
(``activities/landing.py``). ``iter diff``, ``iter apply`` and ``iter discard`` use the same
functions from the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.git import DEFAULT_IDENTITY, GitError, commit_paths, git, toplevel
from activities.heartbeat import heartbeating
from activities.hooks import HOOKS_FILE
from activities.landing import apply_plan, changed_paths, load_plan, plan_landing, save_plan, write_change
from activities.prompt import CHARTER_FILE
from models.config import ApplyMode, Settings, data_dir
from models.worktree import (
    BASE_REF_PREFIX,
    BRANCH_PREFIX,
    MACHINE_STATE,
    SNAPSHOT_GIT_DIR,
    LandInput,
    LandOutput,
    PrepareInput,
    Sandbox,
    base_ref_for,
    branch_for,
    ref_name,
)
from policy.config import POLICY_FILE

EXCLUDES = [f":(exclude,glob){pattern}" for p in MACHINE_STATE for pattern in (f"**/{p}", f"**/{p}/**")]
LOCK_POLL_S = 0.05


class SandboxError(Exception):
    """A sandbox that cannot be made or landed; the message says what to do."""


@dataclass
class Repo:
    """The user's repository (or the snapshot's), as git commands need it."""

    kind: str  # "worktree" for a git checkout, "snapshot" otherwise
    git_dir: Path
    top: Path  # the checkout's top folder: git paths are relative to it
    origin: Path

    @property
    def where(self) -> dict[str, Any]:
        # The snapshot's repository is named explicitly; the user's is found from its checkout.
        return {"git_dir": self.git_dir} if self.kind == "snapshot" else {}

    async def run(self, *args: str, **kw: Any) -> str:
        return await git(self.top, *args, **{**self.where, **kw})

    async def sha(self, ref: str) -> str | None:
        try:
            return (await self.run("rev-parse", "--verify", "-q", f"{ref}^{{commit}}")).strip() or None
        except GitError:
            return None


async def repo_of(origin: Path, create: bool = False) -> Repo:
    top = await toplevel(origin)
    if top is not None:
        common = (await git(origin, "rev-parse", "--path-format=absolute", "--git-common-dir")).strip()
        return Repo(kind="worktree", git_dir=Path(common), top=top, origin=origin)
    git_dir = origin / SNAPSHOT_GIT_DIR
    if create and not (git_dir / "HEAD").exists():
        git_dir.parent.mkdir(parents=True, exist_ok=True)
        await git(origin, "init", "-q", "--bare", str(git_dir))
    return Repo(kind="snapshot", git_dir=git_dir, top=origin, origin=origin)


def sandbox_home(settings: Settings, run_key: str) -> Path:
    return data_dir(settings) / "worktrees" / hashlib.sha256(run_key.encode()).hexdigest()[:16]


def _item_of(branch: str) -> str:
    return branch[len(BRANCH_PREFIX) :]


def _owner(path: Path) -> tuple[int, int] | None:
    """Whom the worktree must belong to: a root worker hands it to the checkout's owner, so that
    steps run as that user (the container takes the workspace owner's uid)."""
    st = path.stat()
    return (st.st_uid, st.st_gid) if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0) else None


def _chown_tree(root: Path, owner: tuple[int, int]) -> None:
    os.lchown(root, *owner)
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            os.lchown(os.path.join(folder, name), *owner)


async def _checkout_commit(repo: Repo, item: str) -> str:
    """The checkout as it is now, uncommitted and untracked files included, as a commit; the user's
    index and files are not touched (a temporary index)."""
    head = await repo.sha("HEAD")
    with tempfile.TemporaryDirectory(prefix="iter-index-") as tmp:
        index = Path(tmp) / "index"
        if repo.kind == "worktree":
            real = Path((await repo.run("rev-parse", "--path-format=absolute", "--git-path", "index")).strip())
            if real.exists():
                shutil.copyfile(real, index)  # its stat data makes `add -A` quick
        env = {"GIT_INDEX_FILE": str(index)}
        work = {"work_tree": repo.top} if repo.kind == "snapshot" else {}
        await repo.run("add", "-A", "--", ".", *EXCLUDES, env=env, **work)
        tree = (await repo.run("write-tree", env=env, **work)).strip()
    if head and tree == (await repo.run("rev-parse", f"{head}^{{tree}}")).strip():
        return head
    parent = ["-p", head] if head else []
    message = f"iter: the checkout when {item} started"
    return (await repo.run(*DEFAULT_IDENTITY, "commit-tree", tree, *parent, "-m", message)).strip()


async def _remove_worktree(repo: Repo, root: Path) -> None:
    with contextlib.suppress(GitError):
        await repo.run("worktree", "remove", "--force", "--force", str(root))
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)
    with contextlib.suppress(GitError):
        await repo.run("worktree", "prune")


async def _delete_refs(repo: Repo, branch: str) -> None:
    for ref in (f"refs/heads/{branch}", BASE_REF_PREFIX + _item_of(branch)):
        with contextlib.suppress(GitError):
            await repo.run("update-ref", "-d", ref)


def _earlier_run(item: str) -> str:
    return (
        f"branch {branch_for(item)} holds the change of an earlier run of {item}: "
        f"`iter diff {item}`, then `iter apply {item}` or `iter discard {item}`"
    )


async def earlier_run(origin: Path, item: str) -> str | None:
    """Why a new run of ``item`` cannot start yet (an earlier run's change is on its branch), or None."""
    repo = await repo_of(origin)
    return _earlier_run(item) if await repo.sha(f"refs/heads/{branch_for(item)}") else None


PROJECT_CONFIG = (POLICY_FILE, HOOKS_FILE, CHARTER_FILE)  # what the request's review, hooks and prompt read


def _carry_project_config(origin: Path, path: Path) -> None:
    """The project's own iter settings into the worktree when git left them out: a `.iter/` the
    user ignores is not in the worktree, and its policy (hold mode, allow rules, secret files)
    would silently not apply to the request. Never a link: a plain file, or nothing."""
    if (origin / ".iter").is_symlink() or (path / ".iter").is_symlink():
        return  # a folder of iter's that points elsewhere is no project's config, and no place to write
    for name in PROJECT_CONFIG:
        src, dst = origin / name, path / name
        if src.is_file() and not src.is_symlink() and not dst.exists():
            dst.parent.mkdir(exist_ok=True)
            shutil.copyfile(src, dst)


async def prepare(inp: PrepareInput) -> Sandbox:
    origin = Path(inp.origin)
    if inp.checkout:
        return Sandbox(kind="checkout", origin=str(origin), path=str(origin), origin_top=str(origin))
    home = sandbox_home(inp.settings, inp.run_key)
    made = home / "sandbox.json"
    if made.exists():
        return Sandbox.model_validate_json(made.read_text())
    repo = await repo_of(origin, create=True)
    branch, base_ref = branch_for(inp.item), base_ref_for(inp.item)
    root = home / ref_name(inp.item)
    claim = home / "claim"
    if claim.exists():  # an attempt of this run died half-way: clear what it made
        resumed = json.loads(claim.read_text())["resumed"]
        await _remove_worktree(repo, root)
        if not resumed:
            await _delete_refs(repo, branch)
    else:
        resumed = await repo.sha(f"refs/heads/{branch}") is not None
        if resumed and not inp.resume:
            raise SandboxError(_earlier_run(inp.item))
        home.mkdir(parents=True, exist_ok=True)
        claim.write_text(json.dumps({"resumed": resumed}))
    if resumed:
        base = await repo.sha(base_ref) or await repo.sha(f"refs/heads/{branch}")
        await repo.run("worktree", "add", "-q", str(root), branch)
    else:
        base = await _checkout_commit(repo, inp.item)
        await repo.run("update-ref", base_ref, base)
        await repo.run("worktree", "add", "-q", "-b", branch, str(root), base)
    path = root / os.path.relpath(origin.resolve(), repo.top.resolve())  # the project's folder in it
    _carry_project_config(origin, path)
    owner = _owner(origin)
    if owner:
        _chown_tree(root, owner)
    sandbox = Sandbox(
        kind=repo.kind,
        origin=str(origin),
        path=str(path),
        root=str(root),
        git_dir=str(repo.git_dir),
        origin_top=str(repo.top),
        branch=branch,
        base=base or "",
        home=str(home),
    )
    made.write_text(sandbox.model_dump_json())
    return sandbox


def _repo_of_sandbox(sb: Sandbox) -> Repo:
    return Repo(kind=sb.kind, git_dir=Path(sb.git_dir), top=Path(sb.origin_top), origin=Path(sb.origin))


async def _commit_worktree(repo: Repo, sb: Sandbox, message: str) -> None:
    """The worktree's files as they are now become the branch's next commit (when they differ)."""
    root = Path(sb.root)
    if not (root / ".git").exists():
        return
    parent = await repo.sha(f"refs/heads/{sb.branch}")
    with tempfile.TemporaryDirectory(prefix="iter-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        where = {"git_dir": repo.git_dir, "work_tree": root}
        if parent:
            await git(root, "read-tree", parent, env=env, **where)
        await git(root, "add", "-A", "--", ".", *EXCLUDES, env=env, **where)
        tree = (await git(root, "write-tree", env=env, **where)).strip()
    if parent and tree == (await repo.run("rev-parse", f"{parent}^{{tree}}")).strip():
        return
    args = ["-p", parent] if parent else []
    sha = (await repo.run(*DEFAULT_IDENTITY, "commit-tree", tree, *args, "-m", message)).strip()
    await repo.run("update-ref", f"refs/heads/{sb.branch}", sha, *([parent] if parent else []))


@contextlib.asynccontextmanager
async def _landing_lock(origin: Path) -> AsyncIterator[None]:
    """One landing at a time per checkout: two requests passing together are checked one by one."""
    folder = origin / ".iter"
    folder.mkdir(exist_ok=True)
    with (folder / ".apply.lock").open("w") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(LOCK_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


async def _replay(repo: Repo, base: str, head: str) -> None:
    """Each commit of the branch becomes a commit on the user's branch, with its message: a
    request's one, or a session's one per iteration."""
    for sha in (await repo.run("rev-list", "--reverse", f"{base}..{head}")).split():
        parent = (await repo.run("rev-parse", f"{sha}^")).strip()
        step = await changed_paths(repo.top, parent, sha)
        if not step.paths:
            continue
        await write_change(repo.top, repo.top, step)
        message = await repo.run("log", "-1", "--format=%B", sha)
        await commit_paths(repo.top, step.paths, message)


async def land_branch(repo: Repo, branch: str, mode: ApplyMode, message: str, record: Path | None = None) -> LandOutput:
    """The branch's change since its base, landed in the checkout (``apply`` or ``commit``) or refused.
    ``record``: where the landing's plan is kept, so that a retried landing makes the same writes once."""
    if record is None:
        with tempfile.TemporaryDirectory(prefix="iter-landing-") as tmp:
            return await land_branch(repo, branch, mode, message, Path(tmp))
    item = _item_of(branch)
    head = await repo.sha(f"refs/heads/{branch}")
    if head is None:
        return LandOutput(landing="none", message=f"nothing to apply: no branch {branch}")
    base = await repo.sha(BASE_REF_PREFIX + item) or head
    change = await changed_paths(repo.top, base, head, **repo.where)
    if not change.paths:
        await _delete_refs(repo, branch)
        return LandOutput(landing="unchanged", message=f"{item} changed no file")
    async with _landing_lock(repo.origin):
        writes = load_plan(record)
        composed = True
        if writes is None:
            writes, edited, unsafe, composed = await plan_landing(repo.top, repo.top, change, **repo.where)
        else:
            edited, unsafe = [], []
        if edited or unsafe:
            why = (
                f"{len(edited)} file(s) changed in your checkout since {item} started ({', '.join(edited[:3])})"
                if edited
                else "; ".join(unsafe[:3])
            )
            return LandOutput(
                landing="refused",
                result=head,
                files=change.paths,
                message=f"not applied: {why}; the change stays on {branch}: resolve it, then `iter apply {item}`",
            )
        save_plan(record, writes)
        landing = "applied"
        if mode == "commit" and repo.kind == "worktree" and not composed:
            await _replay(repo, base, head)  # each commit of the branch, as it is
            landing = "committed"
        else:
            moved = apply_plan(repo.top, writes)
            if moved:
                return LandOutput(
                    landing="refused",
                    result=head,
                    files=change.paths,
                    message=f"not applied: {', '.join(moved[:3])} changed as it landed; the change stays on {branch}",
                )
            if mode == "commit" and repo.kind == "worktree":
                await commit_paths(repo.top, [w.path for w in writes], message)
                landing = "committed"
    await _delete_refs(repo, branch)
    where = "committed on your branch" if landing == "committed" else "applied to your checkout (uncommitted)"
    return LandOutput(landing=landing, result=head, files=change.paths, message=f"{len(change.paths)} file(s) {where}")


async def land(inp: LandInput) -> LandOutput:
    sb = inp.sandbox
    if sb.kind == "checkout":
        return LandOutput(landing="none")
    done = Path(sb.home) / "landed.json"
    if done.exists():
        return LandOutput.model_validate_json(done.read_text())
    repo = _repo_of_sandbox(sb)
    await _commit_worktree(repo, sb, inp.message)
    await _remove_worktree(repo, Path(sb.root))
    item = _item_of(sb.branch)
    later = f"`iter diff {item}`, `iter apply {item}`"
    head = await repo.sha(f"refs/heads/{sb.branch}")
    if head is None or head == sb.base:
        await _delete_refs(repo, sb.branch)
        out = LandOutput(landing="unchanged", message=f"{item} changed no file")
    elif not inp.passed:
        out = LandOutput(
            landing="kept",
            result=head,
            message=f"its change stays on {sb.branch}: {later} or `iter discard {item}`",
        )
    elif inp.mode == "branch":
        out = LandOutput(landing="branch", result=head, message=f"the change is on {sb.branch}: {later}")
    else:
        out = await land_branch(repo, sb.branch, inp.mode, inp.message, Path(sb.home) / "landing")
    done.write_text(out.model_dump_json())
    return out


# --- the CLI's side: iter diff, apply, discard ----------------------------------------------------


async def live_worktree(repo: Repo, branch: str) -> Path | None:
    """The worktree that has ``branch`` checked out now: its request is still running."""
    listing = await repo.run("worktree", "list", "--porcelain", "-z")
    path: str | None = None
    for field in listing.split("\0"):
        if field.startswith("worktree "):
            path = field[len("worktree ") :]
        elif field == f"branch refs/heads/{branch}" and path:
            return Path(path)
    return None


async def diff(origin: Path, item: str, stat_only: bool = False) -> str:
    repo = await repo_of(origin)
    branch = branch_for(item)
    head = await repo.sha(f"refs/heads/{branch}")
    if head is None:
        raise SandboxError(f"no change of {item}: there is no branch {branch}")
    base = await repo.sha(base_ref_for(item)) or head
    shown = ["--stat"] if stat_only else ["--binary"]
    live = await live_worktree(repo, branch)
    if live is None:
        return await repo.run("diff", *shown, base, head)
    with tempfile.TemporaryDirectory(prefix="iter-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        where = {"git_dir": repo.git_dir, "work_tree": live}
        await git(live, "read-tree", head, env=env, **where)
        await git(live, "add", "-A", "--", ".", *EXCLUDES, env=env, **where)
        return await git(live, "diff", "--cached", *shown, base, env=env, **where)


async def apply(origin: Path, item: str, mode: ApplyMode) -> LandOutput:
    repo = await repo_of(origin)
    branch = branch_for(item)
    if await live_worktree(repo, branch) is not None:
        raise SandboxError(f"{item} is still running in its worktree; wait for it to end, or `iter cancel {item}`")
    return await land_branch(repo, branch, mode, f"iter {item}: applied by `iter apply`")


async def discard(origin: Path, item: str, force: bool = False) -> LandOutput:
    """Drop the branch (and, with ``force``, the worktree a run that died without landing left)."""
    repo = await repo_of(origin)
    branch = branch_for(item)
    live = await live_worktree(repo, branch)
    if live is not None and not force:
        raise SandboxError(
            f"{item} is still running in its worktree; `iter cancel {item}` first "
            f"(or, if no run of it is left, `iter discard {item} --force`)"
        )
    if live is not None:
        await _remove_worktree(repo, live)
    if await repo.sha(f"refs/heads/{branch}") is None:
        return LandOutput(landing="none", message=f"nothing to discard: no branch {branch}")
    await _delete_refs(repo, branch)
    return LandOutput(landing="discarded", message=f"discarded {branch}; your checkout is as it was")


# --- the activities ----------------------------------------------------------------------------------


@activity.defn
async def prepare_workspace(inp: PrepareInput) -> Sandbox:
    try:
        async with heartbeating():
            return await prepare(inp)
    except SandboxError as exc:
        raise ApplicationError(str(exc), type="SandboxError", non_retryable=True) from None


@activity.defn
async def land_workspace(inp: LandInput) -> LandOutput:
    async with heartbeating():
        return await land(inp)
