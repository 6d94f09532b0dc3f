"""``.iter/project.yaml``: read, change and write the project file without ever leaving it
half-written (a temporary file, then an atomic rename) or losing a concurrent change (a lock)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cli.output import fail
from models.project import Project

PROJECT_DIR = ".iter"
PROJECT_FILE = "project.yaml"
# Run journals are machine state, not project state: keep them out of the user's commits.
GITIGNORE = "runs/\n"


def find_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` that holds ``.iter/project.yaml``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_DIR / PROJECT_FILE).is_file():
            return folder
    return None


def require_root(start: Path | None = None) -> Path:
    root = find_root(start)
    if root is None:
        fail("no iter project here; create one with `iter project create --name NAME`")
    return root


def project_file(root: Path) -> Path:
    return root / PROJECT_DIR / PROJECT_FILE


def load(root: Path) -> Project:
    path = project_file(root)
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return Project.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        fail(f"{path} is not a valid project file ({exc.__class__.__name__}); fix it or restore it from git")


def save(root: Path, project: Project) -> None:
    folder = root / PROJECT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text(GITIGNORE)
    text = yaml.safe_dump(project.model_dump(mode="json", exclude_defaults=False), sort_keys=False, allow_unicode=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".project.", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, project_file(root))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def editing(start: Path | None = None) -> Iterator[tuple[Path, Project]]:
    """Load, let the caller change, save, all under an exclusive lock; an error saves nothing."""
    root = require_root(start)
    lock_path = root / PROJECT_DIR / ".lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        project = load(root)
        yield root, project
        save(root, project)


FINAL_OUTCOMES = ("passed", "failed", "blocked", "cancelled")


def record_status(request_id: str, status: str) -> None:
    """Keep the project file's view of a request in step with its workflow."""
    with editing() as (_, project):
        req = project.request(request_id)
        if req is not None:
            req.status = status  # type: ignore[assignment]


def record_outcome(request_id: str, state: dict[str, Any]) -> None:
    if state.get("outcome") in FINAL_OUTCOMES:
        record_status(request_id, state["outcome"])
