"""Host-side reads of workspace files, for prompts, reviews and evidence: capped, never through a
symlink that leads out of the workspace, never a secret file, never a FIFO or device.

A step can replace any file of its workspace with a symlink (to ``/etc/shadow``, to the worker's
``~/.ssh``) or a FIFO (which would block the reader forever); the worker reads on the host, outside
the container. What is read goes to a model and into workflow history, so each read resolves the
real path, refuses it outside the workspace or when its name is a secret's (the policy's list:
``.env*``, ``.envrc``, key files, plus a project's ``secret_files``), and opens only a regular file,
without following a last-moment symlink."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from policy import load_policy
from policy.rules.secrets import secret_file


class Refused(Exception):
    """The file must not be read; the message says why, in a few words."""


def _real_inside(workspace: Path, rel: str) -> Path:
    if os.path.isabs(rel) or ".." in Path(rel).parts:
        raise Refused("outside the workspace")
    root = Path(os.path.realpath(workspace))
    real = Path(os.path.realpath(workspace / rel))
    if real != root and root not in real.parents:
        raise Refused("a symlink that leads out of the workspace")
    return real


def secret_reason(workspace: Path, rel: str, real: Path | None = None) -> str | None:
    """Why ``rel`` (or the file it really is) is a secret, by the policy's list; None if it is not."""
    try:
        extra = load_policy(workspace).secret_files
    except ValueError:
        extra = []
    names = [rel] + ([os.path.relpath(real, os.path.realpath(workspace))] if real is not None else [])
    for name in names:
        what = secret_file(name, extra)
        if what:
            return f"a secret file ({what}); iter never reads those"
    return None


def read_capped(workspace: Path, rel: str, cap: int) -> str | None:
    """The file's text, at most ``cap`` bytes; None when it does not exist; a one-line
    ``[refused: ...]`` in its place when iter must not read it."""
    try:
        real = _real_inside(workspace, rel)
        why = secret_reason(workspace, rel, real)
        if why:
            raise Refused(why)
        try:
            st = real.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            if stat.S_ISDIR(st.st_mode):
                return None
            raise Refused("not a regular file")
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except Refused as exc:
        return f"[refused: {rel} is {exc}]"
    except (PermissionError, OSError):
        return None
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(cap + 1)
        size = os.fstat(fh.fileno()).st_size
    text = data[:cap].decode(errors="replace")
    if size > cap:
        text += f"\n[... truncated: {size - cap} more bytes ...]"
    return text
