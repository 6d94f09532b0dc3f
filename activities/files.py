"""File steps, applied exactly once.

A change is computed from the file as it was before the first attempt, recorded as an intent
(before and after digests), then written atomically. A retried attempt compares the file with the
intent: already the "after" means done, still the "before" means apply, anything else means
someone else changed the file and the step fails instead of guessing."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from activities.executor.base import read_json, write_json_atomic
from models.plan import FileStep
from policy import check_path

ABSENT = "absent"


def _digest(data: bytes | None) -> str:
    return ABSENT if data is None else hashlib.sha256(data).hexdigest()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _owner(path: Path, workspace: Path) -> tuple[int, int] | None:
    """Whom a written file must belong to: its old owner, else the workspace's. Only a root worker
    needs this; anyone else writes as themselves, which is already the owner."""
    if os.geteuid() != 0:
        return None
    st = path.stat() if path.exists() else workspace.stat()
    return st.st_uid, st.st_gid


def _make_parents(folder: Path, owner: tuple[int, int] | None) -> None:
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    for created in missing:
        if owner:
            os.chown(created, *owner)


def _write_atomic(path: Path, data: bytes, owner: tuple[int, int] | None) -> None:
    _make_parents(path.parent, owner)
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".iter")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        if owner:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _target(step: FileStep, before: bytes | None) -> bytes | None:
    content = (step.content or "").encode()
    if step.action == "delete":
        return None
    if step.action == "append":
        return (before or b"") + content
    return content


class FileStepError(Exception):
    pass


def apply_file_step(step: FileStep, workspace: Path, run_dir: Path) -> str:
    """Apply ``step`` once; returns the change made: created, modified, appended or deleted."""
    reason = check_path(step.path, workspace)  # defence in depth: the gate already checked it
    if reason:
        raise FileStepError(reason)
    path = workspace / step.path
    run_dir.mkdir(parents=True, exist_ok=True)
    intent_file = run_dir / "intent.json"
    current = _read(path)
    intent = read_json(intent_file)
    if intent is None:
        if step.action in ("modify", "delete") and current is None:
            raise FileStepError(f"{step.path} does not exist, so it cannot be {step.action}d")
        after = _target(step, current)
        change = {"delete": "deleted", "append": "appended"}.get(step.action) or (
            "created" if current is None else "modified"
        )
        intent = {"before": _digest(current), "after": _digest(after), "change": change}
        write_json_atomic(intent_file, intent)
    else:
        after = _target(step, current) if _digest(current) == intent["before"] else None
    now = _digest(current)
    if now == intent["after"]:
        return str(intent["change"])  # an earlier attempt already applied it
    if now != intent["before"]:
        raise FileStepError(f"{step.path} changed under the step (not by it); refusing to guess")
    if after is None:
        path.unlink(missing_ok=True)
    else:
        _write_atomic(path, after, _owner(path, workspace))
    return str(intent["change"])
