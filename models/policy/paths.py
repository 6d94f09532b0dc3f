"""Point 1: every path a step touches stays inside the workspace."""

from __future__ import annotations

import os
from pathlib import Path


def check_path(raw: str, workspace: Path) -> str | None:
    """The reason ``raw`` may not be written, or None when it stays inside ``workspace``."""
    if not raw.strip():
        return "empty path"
    if "\x00" in raw:
        return "path contains a NUL byte"
    if os.path.isabs(raw) or raw.startswith("~"):
        return f"absolute path {raw!r}: paths must be relative to the workspace"
    parts = Path(raw).parts
    if ".." in parts:
        return f"path {raw!r} climbs out with '..'"
    if parts and parts[0] == ".git":
        return f"path {raw!r} writes inside .git/"
    root = workspace.resolve()
    resolved = Path(os.path.realpath(root / raw))
    if resolved != root and root not in resolved.parents:
        return f"path {raw!r} resolves to {resolved}, outside the workspace (symlink escape)"
    return None
