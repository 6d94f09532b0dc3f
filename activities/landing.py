"""Landing a change in the user's checkout: the files a branch changed since its base, written into
the checkout only where the checkout still holds the base's version (or already the result).

All or nothing: every path is checked before one is written, so a refusal (the user edited one of
the files since the request started, a folder on the way is a symlink out of the checkout, the
change would make a symlink that points out of it) leaves the checkout exactly as it was, and the
change stays on its branch. Files are compared by their git blob id, computed here from the raw
bytes: reading the checkout runs no filter and no git at all."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activities.atomic_write import write_atomic
from activities.git import git, git_bytes

Entry = tuple[str, str]  # (git mode, blob id)


@dataclass
class Change:
    paths: list[str]
    base: dict[str, Entry]
    result: dict[str, Entry]


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def entry_of(path: Path) -> Entry | None:
    """What the checkout holds at ``path``, as git would record it; None when nothing is there."""
    try:
        st = path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(st.st_mode):
        return "120000", blob_id(os.fsencode(os.readlink(path)))
    if stat.S_ISREG(st.st_mode):
        return ("100755" if st.st_mode & 0o111 else "100644"), blob_id(path.read_bytes())
    return "other", ""


async def tree_entries(cwd: Path, commit: str, paths: list[str], **where: Any) -> dict[str, Entry]:
    if not paths:
        return {}
    _, out = await git_bytes(cwd, "ls-tree", "-r", "-z", "--full-tree", commit, "--", *paths, **where)
    entries: dict[str, Entry] = {}
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        mode, _kind, sha = meta.decode().split()
        entries[name.decode(errors="surrogateescape")] = (mode, sha)
    return entries


async def changed_paths(cwd: Path, base: str, result: str, **where: Any) -> Change:
    raw = await git(cwd, "diff-tree", "-r", "-z", "--no-renames", "--name-only", base, result, **where)
    paths = [p for p in raw.split("\0") if p]
    return Change(
        paths=paths,
        base=await tree_entries(cwd, base, paths, **where),
        result=await tree_entries(cwd, result, paths, **where),
    )


def _inside(top: Path, path: Path) -> bool:
    real_top = os.path.realpath(top)
    return os.path.commonpath([real_top, os.path.realpath(path)]) == real_top


async def refusals(cwd: Path, top: Path, change: Change, **where: Any) -> tuple[list[str], list[str]]:
    """(edited since the base, unsafe to write): both must be empty to land."""
    edited: list[str] = []
    unsafe: list[str] = []
    for rel in change.paths:
        target = top / rel
        want, was = change.result.get(rel), change.base.get(rel)
        if not _inside(top, target.parent):
            unsafe.append(f"{rel} (a folder on its way leads out of the checkout)")
            continue
        if (want and want[0] == "160000") or (was and was[0] == "160000"):
            unsafe.append(f"{rel} (a submodule)")
            continue
        if want and want[0] == "120000":
            _, link = await git_bytes(cwd, "cat-file", "blob", want[1], **where)
            if link_escapes(rel, os.fsdecode(link)):
                unsafe.append(f"{rel} (a symlink out of the checkout)")
                continue
        now = entry_of(target)
        if now == want:
            continue  # landed already (a retried landing)
        if now != was:
            edited.append(rel)
    return edited, unsafe


def _owner(path: Path, top: Path) -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    st = path.lstat() if path.exists() else top.stat()
    return st.st_uid, st.st_gid


def _write(path: Path, data: bytes, mode: str, owner: tuple[int, int] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, 0o755 if mode == "100755" else 0o644, owner)


def _symlink(path: Path, target: str, owner: tuple[int, int] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.iter-link")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    if owner:
        os.lchown(tmp, *owner)
    os.replace(tmp, path)


def link_escapes(rel: str, target: str) -> bool:
    if os.path.isabs(target):
        return True
    joined = os.path.normpath(os.path.join(os.path.dirname(rel), target))
    return joined == ".." or joined.startswith("../")


async def write_change(cwd: Path, top: Path, change: Change, **where: Any) -> list[str]:
    """Write the result of every path that does not hold it yet; the paths written."""
    written: list[str] = []
    for rel in change.paths:
        target = top / rel
        want = change.result.get(rel)
        if entry_of(target) == want:
            continue
        owner = _owner(target, top)
        if want is None:
            target.unlink(missing_ok=True)
        else:
            _, data = await git_bytes(cwd, "cat-file", "blob", want[1], **where)
            if want[0] == "120000":
                _symlink(target, os.fsdecode(data), owner)
            else:
                if target.is_symlink():
                    target.unlink()
                _write(target, data, want[0], owner)
        written.append(rel)
    return written


@dataclass
class Write:
    """One path of a landing: what the checkout must hold there now, and what it will hold."""

    path: str
    expect: Entry | None
    final: Entry | None
    data: bytes | None = None  # the final content (None: delete)


async def _blob(cwd: Path, sha: str, **where: Any) -> bytes:
    return (await git_bytes(cwd, "cat-file", "blob", sha, **where))[1]


async def plan_landing(
    cwd: Path, top: Path, change: Change, **where: Any
) -> tuple[list[Write], list[str], list[str], bool]:
    """What to write, what the user edited since the base, what is unsafe, and whether a change had
    to be composed with the user's (appends on both sides: the request's lines go after the
    user's, or another request's, instead of refusing)."""
    edited, unsafe = await refusals(cwd, top, change, **where)
    writes: list[Write] = []
    composed = False
    for rel in change.paths:
        if rel in unsafe or any(u.startswith(f"{rel} (") for u in unsafe):
            continue
        target = top / rel
        want, was, now = change.result.get(rel), change.base.get(rel), entry_of(target)
        if now == want:
            continue
        data = await _blob(cwd, want[1], **where) if want else None
        if rel in edited:
            if not (want and was and now and {want[0], was[0], now[0]} <= {"100644", "100755"}):
                continue
            before, mine = await _blob(cwd, was[1], **where), target.read_bytes()
            if data is None or not (data.startswith(before) and mine.startswith(before)):
                continue
            data = mine + data[len(before) :]
            want = (now[0], blob_id(data))
            edited.remove(rel)
            composed = True
        writes.append(Write(path=rel, expect=now, final=want, data=data))
    return writes, edited, unsafe, composed


def save_plan(folder: Path, writes: list[Write]) -> None:
    """The landing's writes, before any is made: a retried landing makes the same ones, once."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = []
    for n, w in enumerate(writes):
        if w.data is not None:
            (folder / f"{n}.data").write_bytes(w.data)
        manifest.append({"path": w.path, "expect": w.expect, "final": w.final, "data": w.data is not None})
    tmp = folder / "plan.json.tmp"
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, folder / "plan.json")


def load_plan(folder: Path) -> list[Write] | None:
    try:
        manifest = json.loads((folder / "plan.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return [
        Write(
            path=m["path"],
            expect=tuple(m["expect"]) if m["expect"] else None,  # type: ignore[arg-type]
            final=tuple(m["final"]) if m["final"] else None,  # type: ignore[arg-type]
            data=(folder / f"{n}.data").read_bytes() if m["data"] else None,
        )
        for n, m in enumerate(manifest)
    ]


def apply_plan(top: Path, writes: list[Write]) -> list[str]:
    """Make each write whose path does not hold its final content yet; the paths that still held
    something else than planned (changed during the landing) are returned, unwritten."""
    moved: list[str] = []
    for w in writes:
        target = top / w.path
        now = entry_of(target)
        if now == w.final:
            continue
        if now != w.expect:
            moved.append(w.path)
            continue
        owner = _owner(target, top)
        if w.final is None:
            target.unlink(missing_ok=True)
        elif w.final[0] == "120000":
            _symlink(target, os.fsdecode(w.data or b""), owner)
        else:
            if target.is_symlink():
                target.unlink()
            _write(target, w.data or b"", w.final[0], owner)
    return moved
