"""The project model stored in ``.iter/project.yaml``: features, endpoints, selected files and
feature requests. The CLI owns the file; workflows receive a snapshot in their input."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RequestStatus = Literal["new", "running", "passed", "failed", "blocked", "cancelled"]
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "item"


class _Kept(BaseModel):
    """Keys iter does not know (a newer iter's, the user's own) survive a load and a save."""

    model_config = ConfigDict(extra="allow")


def new_project_id() -> str:
    return secrets.token_hex(4)


class Feature(_Kept):
    id: str
    name: str
    type: str = "feature"


class Endpoint(_Kept):
    name: str
    path: str
    method: str = "GET"


class FeatureRequest(_Kept):
    id: str
    description: str
    feature: str | None = None
    criteria: list[str] = Field(default_factory=list)
    affected_files: list[str] = Field(default_factory=list)
    status: RequestStatus = "new"
    # How it was last run (`--executor`, `--model`), so that every later `iter orchestrate` (an
    # attach, a re-run) runs it the same way without the flags being typed again.
    executor: str | None = None
    model: str | None = None


class Project(_Kept):
    # Created once with the project, never changed: workflow ids carry it, so that projects of
    # the same name in two folders never share a workflow.
    id: str = ""
    name: str
    stack: str = "python"
    test_command: str = ""  # what runs the project's tests; empty: the stack's usual one
    features: list[Feature] = Field(default_factory=list)
    endpoints: list[Endpoint] = Field(default_factory=list)
    selected_files: list[str] = Field(default_factory=list)
    requests: list[FeatureRequest] = Field(default_factory=list)

    def request(self, request_id: str) -> FeatureRequest | None:
        return next((r for r in self.requests if r.id == request_id), None)

    def feature(self, key: str) -> Feature | None:
        slug = slugify(key)
        return next((f for f in self.features if f.id == slug or f.name == key), None)

    def next_request_id(self) -> str:
        numbers = [int(r.id.split("_")[1]) for r in self.requests if re.fullmatch(r"req_\d+", r.id)]
        return f"req_{max(numbers, default=0) + 1:02d}"


def request_workflow_id(project: str, request_id: str, project_id: str = "") -> str:
    scope = f"-{project_id}" if project_id else ""
    return f"iter-{slugify(project)}{scope}-{request_id}"


def session_workflow_id(name: str, scope: str = "") -> str:
    """``scope``: the project id of the folder the session works in (or a digest of the folder)."""
    return f"iter-session-{slugify(name)}" + (f"-{scope}" if scope else "")


def folder_scope(folder: str) -> str:
    """A stable short id for a folder that has no project file."""
    return hashlib.sha256(folder.encode()).hexdigest()[:8]
