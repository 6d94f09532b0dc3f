"""Turns what the user typed (req_01, a session name, a workflow id) into a workflow id."""

from __future__ import annotations

import re
from pathlib import Path

from cli import project_store as store
from cli.output import fail
from models.project import request_workflow_id, session_workflow_id


def workflow_id_for(target: str) -> str:
    if target.startswith("iter-"):
        return target
    root = store.find_root()
    if root is not None:
        project = store.load(root)
        if project.request(target):
            return request_workflow_id(project.name, target, project.id)
    if re.fullmatch(r"req_\d+", target):
        fail(f"no request {target!r} in this project" if root else f"{target!r} needs an iter project here")
    return session_workflow_id(target, store.scope(Path.cwd()))
