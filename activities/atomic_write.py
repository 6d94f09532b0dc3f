"""Replacing a file so that a reader sees the old content or the new, never half of it: the bytes
go to a temporary file beside it, get their mode (and, for a root worker, their owner), then one
rename puts them in place. Used by file steps (``activities/files.py``) and by landing a change
in the user's checkout (``activities/landing.py``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> None:
    """``path`` holds ``data`` with ``mode`` (and ``owner``, when given); its folder must exist."""
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
