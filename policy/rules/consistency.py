"""Point 8: the plan is consistent with itself and with the workspace.

- a file step that modifies or deletes a file needs the file: in the workspace, or created by an
  earlier step (a file step, or a command that plausibly creates it); ``append`` creates a missing
  file, as ``>>`` does;
- ``create`` is for new files: creating a file that exists (and no earlier step deleted) would
  overwrite it unseen, so the plan must say ``modify``; and no conflicting writes: creating a path
  twice, or after an earlier step wrote it; touching a path after an earlier step deleted it;
- a verify step only checks: it does not change files;
- with ``require_verify``, the plan has at least one verify step.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from models.plan import FileStep, Step, VerifyStep
from policy.invocation import Analysis, Invocation
from policy.paths import check_path
from policy.rules.base import Hit
from policy.words import short_flags, subcommand

POINT = 8
# Commands that create files whose names they do not mention.
_GENERATED = {
    "npm init": ("package.json",), "yarn init": ("package.json",), "pnpm init": ("package.json",),
    "npm install": ("package-lock.json", "package.json"), "cargo init": ("Cargo.toml", "src/main.rs", "src/lib.rs"),
    "poetry init": ("pyproject.toml",), "uv init": ("pyproject.toml", "main.py"), "go mod init": ("go.mod",),
    "go mod tidy": ("go.sum",), "git init": (".gitignore",), "pytest": (".pytest_cache",),
}
_NOT_CREATING = frozenset({"mkdir", "cd", "ls", "cat", "echo", "rm", "rmdir", "grep", "find", "test", "[", "head",
                           "tail", "wc", "stat", "file", "diff", "pushd", "chmod", "printf"})
_MUTATING = frozenset({"rm", "rmdir", "mv", "cp", "touch", "mkdir", "tee", "truncate", "shred", "dd", "chmod", "chown",
                       "ln", "patch", "install", "unlink"})
_WRITES = frozenset({">", ">>", ">|", "&>", "&>>"})
_GIT_MUTATING = frozenset({"commit", "add", "push", "reset", "checkout", "restore", "clean", "rm", "mv", "merge",
                           "rebase", "stash", "tag", "cherry-pick", "revert", "pull", "switch", "apply", "am"})


@dataclass
class _Seen:
    state: str  # created, written, deleted
    step_id: str


def check_plan(
    steps: list[Step], analyses: dict[str, Analysis], root: Path, require_verify: bool
) -> Iterator[tuple[str, Hit]]:
    seen: dict[str, _Seen] = {}
    mentioned: set[str] = set()  # paths earlier commands name or generate
    for step in steps:
        if isinstance(step, FileStep):
            yield from ((step.id, h) for h in _file_step(step, seen, mentioned, root))
        else:
            analysis = analyses.get(step.id)
            if analysis is None:
                continue
            mentioned |= mentions(analysis)
            if isinstance(step, VerifyStep):
                yield from ((step.id, h) for h in _verify_writes(analysis))
    if require_verify and not any(isinstance(s, VerifyStep) for s in steps):
        last = steps[-1].id if steps else "plan"
        yield last, Hit(POINT, "the plan has no verify step: nothing would show that it works")


def _file_step(step: FileStep, seen: dict[str, _Seen], mentioned: set[str], root: Path) -> Iterator[Hit]:
    if check_path(step.path, root) is not None:
        return  # point 1 reports it
    key = os.path.normpath(step.path)
    before = seen.get(key)
    on_disk = os.path.lexists(root / key)
    if on_disk and os.path.isdir(root / key):
        yield Hit(POINT, f"{step.path} is a directory, not a file")
        return
    if step.action == "create":
        if before is not None and before.state != "deleted":
            yield Hit(POINT, f"creates {step.path}, which step {before.step_id} already wrote: conflicting writes")
        elif before is None and on_disk:
            yield Hit(POINT, f"creates {step.path}, which already exists: say modify, so the change is reviewed "
                             "against what is there")
        seen[key] = _Seen("created", step.id)
        return
    verb = {"modify": "modifies", "append": "appends to", "delete": "deletes", "edit": "edits"}[step.action]
    if before is not None and before.state == "deleted":
        yield Hit(POINT, f"{verb} {step.path}, which step {before.step_id} deletes")
    elif before is None and not on_disk and step.action != "append" and not _maybe_created(key, mentioned):
        yield Hit(POINT, f"{verb} {step.path}, which does not exist and no earlier step creates")
    seen[key] = _Seen("deleted" if step.action == "delete" else "written", step.id)


def _maybe_created(key: str, mentioned: set[str]) -> bool:
    if key in mentioned:
        return True
    parts = Path(key).parts
    return any(os.path.join(*parts[:i]) in mentioned for i in range(1, len(parts)))


def mentions(analysis: Analysis) -> set[str]:
    """Paths a command step may create: the words of commands that are not known to create nothing
    (``touch x``, ``cp a x``, ``cargo new app``), redirection targets, and known generated files."""
    out: set[str] = set()
    for inv in analysis.invocations:
        for r in inv.cmd.redirects:
            if r.target is not None and r.op in _WRITES:
                out.add(os.path.normpath(r.target.text))
        key = " ".join([inv.name, *inv.texts[:2]])
        for cmd, files in _GENERATED.items():
            if key.startswith(cmd):
                out.update(files)
        if inv.name in _NOT_CREATING or not inv.name:
            continue
        for a in inv.args:
            if not a.dynamic and not a.text.startswith("-") and a.text:
                out.add(os.path.normpath(a.text))
    return out


def _verify_writes(analysis: Analysis) -> Iterator[Hit]:
    for inv in analysis.invocations:
        for r in inv.cmd.redirects:
            if r.target is not None and r.op in _WRITES and not r.target.text.startswith("/dev/"):
                yield Hit(POINT, f"a verify step must only check, but it writes {r.target.text!r}")
                return
        if _mutates(inv):
            yield Hit(POINT, f"a verify step must only check, but `{inv.normalized[:60]}` changes files")
            return


def _mutates(inv: Invocation) -> bool:
    if inv.name in _MUTATING:
        return True
    if inv.name == "sed" and "i" in short_flags(inv.args):
        return True
    if inv.name == "git":
        sub, _ = subcommand(inv.args, frozenset({"-C", "-c"}))
        return sub in _GIT_MUTATING
    return False

