"""The project model stored in ``.iter/project.yaml``: features, endpoints, selected files and
feature requests. The CLI owns the file; workflows receive a snapshot in their input."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

RequestStatus = Literal["new", "running", "passed", "failed", "blocked", "cancelled"]
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "item"


class Feature(BaseModel):
    id: str
    name: str
    type: str = "feature"


class Endpoint(BaseModel):
    name: str
    path: str
    method: str = "GET"


class FeatureRequest(BaseModel):
    id: str
    description: str
    feature: str | None = None
    criteria: list[str] = Field(default_factory=list)
    affected_files: list[str] = Field(default_factory=list)
    status: RequestStatus = "new"


class Project(BaseModel):
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


def request_workflow_id(project: str, request_id: str) -> str:
    return f"iter-{slugify(project)}-{request_id}"


def session_workflow_id(name: str) -> str:
    return f"iter-session-{slugify(name)}"
