"""Run the real ``iter`` command as a user would: a subprocess in the workspace."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml

from models.project import request_workflow_id

ITER = str(Path(sys.executable).parent / "iter")


def iter_cmd(cwd: Path, env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ITER, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def iter_popen(cwd: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([ITER, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def workflow_status(cwd: Path, env: dict[str, str], request_id: str = "req_01") -> str:
    """The request's workflow status as `iter status --json` shows it; "" while it has none."""
    done = iter_cmd(cwd, env, "status", request_id, "--json")
    return str(json.loads(done.stdout)["workflow_status"]) if done.returncode == 0 else ""


def until_running(cwd: Path, env: dict[str, str], tries: int = 100) -> None:
    """Until `iter status` shows the request running: a CLI just started has started its workflow."""
    for _ in range(tries):
        if workflow_status(cwd, env) == "running":
            return
        time.sleep(0.1)


def setup_project(cwd: Path, env: dict[str, str], name: str = "") -> str:
    """Create the example's project; returns the workflow id of its req_01. Each test gets its own
    project name, since the tests share one Temporal server."""
    name = name or f"calc-{uuid.uuid4().hex[:6]}"
    for args in (
        ("project", "create", "--name", name),
        ("feature", "add", "--name", "Arithmetic", "--type", "feature"),
        ("files", "select", "src/calc/ops.py", "tests/test_ops.py"),
        (
            "request",
            "add",
            "--description",
            "Add multiply",
            "--feature",
            "arithmetic",
            "--criteria",
            "multiply(3, 4) == 12",
        ),
    ):
        done = iter_cmd(cwd, env, *args)
        assert done.returncode == 0, done.stderr
    return request_wid(cwd)


def request_wid(cwd: Path, request_id: str = "req_01") -> str:
    """The workflow id of a request of the project in ``cwd``: its name and its unique id."""
    project = yaml.safe_load((cwd / ".iter" / "project.yaml").read_text())
    return request_workflow_id(project["name"], request_id, project["id"])
