"""What the review saw of each file a plan changes, so that execution can refuse to write over a
file that changed since (issue 12: a user's own edit must never vanish under a planned step).

The digest is recorded for the first file step on each path, when no earlier command step of the
plan may have touched that path: for those, the file at execution time must still be the one the
review saw. The format is the one file-step journals use (sha256 hex, or ``absent``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from models.plan import FileStep, Step
from policy.commands import analyze
from policy.paths import check_path, is_inside, workspace_root
from policy.rules.consistency import mentions

ABSENT = "absent"
MAX_DIGEST_BYTES = 64 * 1024 * 1024


def digest_of(data: bytes | None) -> str:
    return ABSENT if data is None else hashlib.sha256(data).hexdigest()


def reviewed_digests(steps: list[Step], workspace: Path) -> dict[str, str]:
    """step id -> digest of its file as it is now, for the steps whose "before" the plan fixes."""
    root = workspace_root(workspace)
    out: dict[str, str] = {}
    touched: set[str] = set()
    mentioned: set[str] = set()
    for step in steps:
        if not isinstance(step, FileStep):
            mentioned |= mentions(analyze(step.command))
            continue
        key = os.path.normpath(step.path)
        if key in touched or key in mentioned or check_path(step.path, root) is not None:
            touched.add(key)
            continue
        touched.add(key)
        if (digest := _current(root, key)) is not None:
            out[step.id] = digest
    return out


def _current(root: Path, key: str) -> str | None:
    path = root / key
    if not os.path.lexists(path):
        return ABSENT
    real = os.path.realpath(path)
    if not is_inside(real, root) or not os.path.isfile(real) or os.path.getsize(real) > MAX_DIGEST_BYTES:
        return None
    try:
        return digest_of(Path(real).read_bytes())
    except OSError:
        return None
