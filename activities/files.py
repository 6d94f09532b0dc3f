"""File steps, applied exactly once.

A change is computed from the file as it is, recorded as an intent (before and after digests) in
the step's journal, then written atomically. A retried attempt compares the file with the intent:
already the "after" means done, still the "before" means apply, anything else means someone else
changed the file and the step fails instead of guessing. An append is judged by the file's head:
other requests may append behind it in the meantime."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from activities.atomic_write import write_atomic
from activities.executor.base import read_sealed, write_sealed
from models.edits import EditError, apply_blocks
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
    write_atomic(path, data, mode, owner)


def _target(step: FileStep, before: bytes | None) -> bytes | None:
    content = (step.content or "").encode()
    if step.action == "delete":
        return None
    if step.action == "append":
        return (before or b"") + content
    if step.action == "edit":  # validated against the file as it is now, not as the model saw it
        try:
            return apply_blocks((before or b"").decode(), step.content or "", step.path).encode()
        except (EditError, UnicodeDecodeError) as exc:
            raise FileStepError(str(exc)) from None
    return content


class FileStepError(Exception):
    pass


def apply_file_step(step: FileStep, workspace: Path, run_dir: Path, reviewed: str | None = None) -> str:
    """Apply ``step`` once; returns the change made: created, modified, appended or deleted.

    ``reviewed``: the file's digest when the plan was reviewed (``policy.digests``, same format as
    the intent's). A file that changed since is left alone: someone's edit would be lost unseen.

    ``run_dir`` is the step's directory in the request's journal (outside the workspace). The
    activity also journals the step's result once this returns, so a retry only ever gets here for
    a step whose attempt died between its intent and its result."""
    reason = check_path(step.path, workspace)  # defence in depth: the gate already checked it
    if reason:
        raise FileStepError(reason)
    path = workspace / step.path
    run_dir.mkdir(parents=True, exist_ok=True)
    intent_file = run_dir / "intent.json"
    current = _read(path)
    intent = read_sealed(intent_file)
    if intent is not None and _applied(intent, current):
        return str(intent["change"])  # an earlier attempt already applied it
    if intent is not None and not _untouched(intent, current):
        raise FileStepError(f"{step.path} changed under the step (not by it); refusing to guess")
    # An append overwrites nothing: what others added since the review stays, ahead of it (another
    # request appending to the same file is no reason to refuse).
    if intent is None and reviewed is not None and step.action != "append" and _digest(current) != reviewed:
        now = "was deleted" if current is None else ("was created" if reviewed == ABSENT else "was edited")
        raise FileStepError(f"{step.path} {now} after the plan was reviewed; not overwriting what the review never saw")
    if step.action in ("modify", "delete", "edit") and current is None:
        verb = {"modify": "modified", "delete": "deleted", "edit": "edited"}[step.action]
        raise FileStepError(f"{step.path} does not exist, so it cannot be {verb}")
    after = _target(step, current)
    change = {"delete": "deleted", "append": "appended", "edit": "modified"}.get(step.action) or (
        "created" if current is None else "modified"
    )
    if intent is not None:
        change = str(intent["change"])  # what the first attempt found decides the word
    write_sealed(intent_file, _intent(step, current, after, change))
    if after is None:
        path.unlink(missing_ok=True)
    else:
        _write_atomic(path, after, _owner(path, workspace))
    return change


def _intent(step: FileStep, before: bytes | None, after: bytes | None, change: str) -> dict[str, object]:
    """What the step is about to do, recorded before it does it. An append records sizes too: what
    it wrote is a prefix of the file even after another request appended behind it."""
    intent: dict[str, object] = {"before": _digest(before), "after": _digest(after), "change": change}
    if step.action == "append" and after is not None:
        intent |= {"before_size": len(before or b""), "after_size": len(after)}
    return intent


def _prefix(data: bytes | None, size: object) -> bytes | None:
    return None if data is None or not isinstance(size, int) or len(data) < size else data[:size]


def _applied(intent: dict[str, object], current: bytes | None) -> bool:
    if "after_size" in intent:
        return _digest(_prefix(current, intent["after_size"])) == intent["after"]
    return _digest(current) == intent["after"]


def _untouched(intent: dict[str, object], current: bytes | None) -> bool:
    """The file is as the step found it (an append: its old text still leads the file)."""
    if "before_size" in intent:
        return intent["before_size"] == 0 or _digest(_prefix(current, intent["before_size"])) == intent["before"]
    return _digest(current) == intent["before"]
