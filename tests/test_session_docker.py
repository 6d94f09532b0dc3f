"""A session's steps run in the hardened Docker executor like a request's: one container for the
session's work, gone when the session ends."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from temporalio.client import Client

from models.config import Settings
from tests import session_replies as s
from tests.fake_llm import FakeModel
from worker import build_worker

pytestmark = pytest.mark.docker


def iter_containers() -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", "label=iter.executor", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


async def test_session_steps_run_in_docker_and_the_container_goes_with_the_session(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, docker_image: str
) -> None:
    settings.executor.backend = "docker"
    settings.executor.image = docker_image
    before = set(iter_containers())
    subprocess.run(["chown", "-R", "1000:1000", str(workspace)], check=True)  # a user's workspace, not root's
    s.write_spec(workspace)
    s.reviewers_pass(fake)
    whoami = s.session_plan(
        {"id": "s1", "type": "command", "command": "id -u > uid.txt; hostname > host.txt"},
        {"id": "s2", "type": "verify", "command": "test -s uid.txt"},
        summary="record who runs the steps",
        session_complete=False,
    )
    fake.script("session_plan", whoami)
    fake.default("session_plan", s.session_plan(summary="stop here", session_complete=True))
    async with build_worker(client, settings):
        state = await s.run_session(client, settings, s.session_input(settings, workspace, iterations=1), timeout=90)

    assert state.summaries and state.summaries[0].outcome == "passed", state.events[-5:]
    assert (workspace / "host.txt").read_text().strip() != socket.gethostname()  # it ran in a container
    assert (workspace / "uid.txt").read_text().strip() == "1000"  # as the workspace owner, not root
    assert (workspace / "uid.txt").stat().st_uid == 1000
    assert set(iter_containers()) == before  # nothing of the session's is left
