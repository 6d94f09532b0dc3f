"""``.iter/project.yaml``: read, change and write the project file without ever leaving it
half-written (a temporary file, then an atomic rename) or losing a concurrent change (a lock)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cli.output import fail
from models.project import Project, folder_scope, new_project_id

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
    text = path.read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        fail(f"{path}: {where}{problem} (not valid YAML); fix it or restore it from git")
    if not isinstance(data, dict):
        fail(f"{path}: line 1: expected the project's fields (name, features, requests...), got {type(data).__name__}")
    try:
        project = Project.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field_name(err["loc"])
        line = _line_of(text, err["loc"])
        where = f"line {line}, " if line else ""
        fail(f"{path}: {where}field {field}: {err['msg']}; fix it or restore it from git")
    if not project.id:  # a project made before ids existed: give it one, once (never while locked)
        with _locked(root):
            again = Project.model_validate(yaml.safe_load(path.read_text()) or {})
            if not again.id:
                again.id = new_project_id()
                save(root, again)
        return again
    return project


def _field_name(loc: tuple[Any, ...]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "(top level)"


def _line_of(text: str, loc: tuple[Any, ...]) -> int:
    """The line of the deepest node of ``loc`` present in the YAML (1-based; 0 if unknown)."""
    try:
        node: Any = yaml.compose(text)
    except yaml.YAMLError:
        return 0
    line = 0
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    lock_path = root / PROJECT_DIR / ".lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def save(root: Path, project: Project) -> None:
    folder = root / PROJECT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text(GITIGNORE)
    text = yaml.safe_dump(project.model_dump(mode="json", exclude_defaults=False), sort_keys=False, allow_unicode=True)
    target = project_file(root)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)  # the user's choice of mode survives a save
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".project.", suffix=".yaml")
    os.fchmod(fd, mode)
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
    project = load(root)  # outside the lock: it may need to take it to give the project its id
    with _locked(root):
        project = load(root)
        yield root, project
        save(root, project)


def scope(workspace: Path) -> str:
    """What keeps this folder's workflows apart from another folder's: its project id, or a digest
    of its path when it holds no project."""
    root = find_root(workspace)
    if root is not None:
        return load(root).id
    return folder_scope(str(workspace.resolve()))


FINAL_OUTCOMES = ("passed", "failed", "blocked", "cancelled")


def record_status(request_id: str, status: str) -> None:
    """Keep the project file's view of a request in step with its workflow."""
    with editing() as (_, project):
        req = project.request(request_id)
        if req is not None:
            req.status = status  # type: ignore[assignment]


def record_run(request_id: str, options: dict[str, str | None]) -> None:
    """A request started: running, and with what (executor, model), for every later attach."""
    with editing() as (_, project):
        req = project.request(request_id)
        if req is not None:
            req.status = "running"
            for key, value in options.items():
                if value is not None:
                    setattr(req, key, value)


def record_outcome(request_id: str, state: dict[str, Any]) -> None:
    if state.get("outcome") in FINAL_OUTCOMES:
        record_status(request_id, state["outcome"])
