"""Point 1: every path a step touches stays inside the workspace.

Two entry points: ``check_path`` for the path of a file step (always relative to the workspace
root), and ``path_problem`` for a path a command uses, which may be relative to a directory the
command ``cd``-ed into, may be absolute and point back into the workspace, or may be one of the
few places outside that are harmless (``/dev/null``, ``/tmp``: the container's tmpfs).

Real paths are resolved with ``os.path.realpath``, so a symlink inside the workspace that points
outside is caught; this touches the file system, hence activities only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Harmless places outside the workspace: the null device and friends, and scratch space.
_DEV_OK = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/stdin", "/dev/tty", "/dev/zero",
                     "/dev/random", "/dev/urandom"})
_SCRATCH = ("/tmp",)
_HOME_VAR = re.compile(r"^\$\{?(HOME|USER|LOGNAME|OLDPWD)\b")
# First components that make an argument of an unknown command clearly a system path.
SYSTEM_ROOTS = frozenset(
    [
        "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "media", "mnt", "opt", "proc", "root",
        "run", "sbin", "snap", "srv", "sys", "usr", "var", "Users", "Library", "System", "Volumes", "private",
        "Applications",
    ]
)


ITER_DIR = ".iter"  # iter's own state in the workspace: the rules that judge steps, and their journals


def workspace_root(workspace: Path) -> Path:
    return Path(os.path.realpath(workspace))


def is_inside(real: str, root: Path) -> bool:
    base = str(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def check_path(raw: str, workspace: Path) -> str | None:
    """The reason ``raw`` (a file step's path) may not be touched, or None when it stays inside."""
    if not raw.strip():
        return "empty path"
    if "\x00" in raw:
        return "path contains a NUL byte"
    if os.path.isabs(raw) or raw.startswith(("~", "\\")) or re.match(r"[A-Za-z]:[\\/]", raw):
        return f"absolute path {raw!r}: paths must be relative to the workspace"
    parts = Path(raw).parts
    if ".." in parts:
        return f"path {raw!r} climbs out with '..'"
    if ".git" in parts:
        return f"path {raw!r} writes inside .git/"
    if parts and parts[0] == ITER_DIR:
        return f"path {raw!r} writes iter's own files (.iter/: policy, hooks, journals); steps may not"
    if os.path.normpath(raw) == ".":
        return f"path {raw!r} names the workspace itself, not a file"
    root = workspace_root(workspace)
    resolved = os.path.realpath(root / raw)
    if not is_inside(resolved, root):
        return f"path {raw!r} resolves to {resolved}, outside the workspace (symlink escape)"
    return None


def path_problem(text: str, cwd: str | None, root: Path, write: bool) -> str | None:
    """The reason a command's path argument leaves the workspace (or writes into .git), or None.

    ``cwd`` is where the command runs, relative to the root ("." at first); None when unknown,
    after a ``cd`` to a computed directory, which is reported on its own.
    """
    if not text or text in _DEV_OK or text.startswith("/dev/fd/"):
        return None
    if text.startswith("~") or _HOME_VAR.match(text):
        return f"{_short(text)}, in the home directory outside the workspace"
    if cwd is None or cwd.startswith("~"):
        # after a cd the rules could not follow (reported on its own), only '..' is still clearly risky
        if ".." in text.split("/"):
            return f"{_short(text)}, which climbs with '..' from a directory only known at run time"
        return None
    base = _before_glob(text)
    joined = os.path.normpath(os.path.join(cwd, base))
    if os.path.isabs(joined):
        norm = os.path.normpath(joined)
        if norm in _DEV_OK or any(norm == s or norm.startswith(s + "/") for s in _SCRATCH):
            return None
        real = os.path.realpath(norm)
        if not is_inside(real, root):
            return f"{_short(text)}, outside the workspace"
        rel = os.path.relpath(real, root)
    else:
        if joined == ".." or joined.startswith("../"):
            return f"{_short(text)}, which climbs out of the workspace with '..'"
        real = os.path.realpath(root / joined)
        if not is_inside(real, root):
            return f"{_short(text)}, which a symlink resolves to {real} outside the workspace"
        rel = joined
    if write and ".git" in Path(rel).parts:
        return f"{_short(text)}, inside .git/"
    if write and Path(rel).parts[:1] == (ITER_DIR,):
        return f"{_short(text)}, inside iter's own .iter/ (policy, hooks, journals)"
    return None


def looks_like_system_path(text: str) -> bool:
    """For commands the rules know nothing about: is this argument clearly a path outside?
    (``/etc/passwd``, ``~/.bashrc``, ``../../x``; not ``/api/v1`` or ``s/a/b/``)."""
    if text.startswith("~") or _HOME_VAR.match(text):
        return True
    if text == "/" or text.startswith("//"):
        return True
    if text.startswith("/"):
        first = text.lstrip("/").split("/", 1)[0]
        return first in SYSTEM_ROOTS
    return ".." in text.split("/")


def _before_glob(text: str) -> str:
    """``src/*.py`` is checked as ``src``: a glob cannot climb higher than its fixed prefix."""
    parts = text.split("/")
    for i, part in enumerate(parts):
        if any(c in part for c in "*?["):
            fixed = "/".join(parts[:i])
            return fixed if fixed else ("/" if text.startswith("/") else ".")
    return text


def _short(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")
