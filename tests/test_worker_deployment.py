"""The worker as it is deployed: it owns its configuration (its environment wins over what a
request's input froze), serves separate task queues when told, is started so that nothing in the
user's directory shadows iter, and docker-compose.yml is a valid compose file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from temporalio.client import Client

from models.config import Settings
from models.queues import queue_name
from tests import replies as r
from tests.cli import ITER, iter_cmd, setup_project
from tests.conftest import REPO
from tests.fake_llm import FakeModel, FakeModelServer
from tests.pipeline import start
from worker import build_worker

PLAN = r.plan(r.write("s1", "notes.txt", "hello\n"), r.verify("s2", "test -f notes.txt"))
DEAD_URL = "http://127.0.0.1:9"  # nothing listens: a request that used it would never finish
WORKER_START_S = 60


def script(fake: FakeModel) -> None:
    fake.default("plan", PLAN)
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())


def own_env(server: FakeModelServer, settings: Settings, data: Path) -> dict[str, str]:
    """All a deployed worker has: a PATH and its own ITER_* variables, as in docker-compose.yml."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(data),
        "ITER_TEMPORAL_ADDRESS": settings.temporal.address,
        "ITER_TASK_QUEUE": settings.temporal.task_queue,
        "ITER_LLM_PROVIDER": server.provider,
        "ITER_LLM_BASE_URL": server.base_url,
        "ITER_MODEL": "coder",
        "ITER_REVIEWER_MODEL": "reviewer",
        "ITER_EXECUTOR": "local",
        "ITER_DATA_DIR": str(data),
        "ITER_RETRY_INITIAL_INTERVAL": "0.2",
    }


def frozen_elsewhere(settings: Settings, tmp_path: Path) -> Settings:
    """What a laptop's CLI would freeze into the input: none of it fits the worker's machine."""
    return Settings.model_validate(
        {
            "llm": {"base_url": DEAD_URL},
            "executor": {"backend": "docker", "image": "no-such-image:latest"},
            "retry": {"initial_interval_s": 0.2, "max_interval_s": 1.0},
            "temporal": settings.temporal.model_dump(),
            "data_dir": str(tmp_path / "laptop-data"),
        }
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([ITER, "worker", *args], cwd=log.parent, env=env, stdout=out, stderr=subprocess.STDOUT)


def started_worker(env: dict[str, str], folder: Path, processes: list[subprocess.Popen[bytes]], *args: str) -> None:
    """An ``iter worker`` with ``env`` and its log in ``folder``, polling before this returns."""
    folder.mkdir()
    log = folder / "worker.log"
    processes.append(run_worker(env, log, *args))
    wait_polling(log, processes[-1])


def wait_polling(log: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WORKER_START_S
    while "polling task queue" not in log.read_text():
        assert proc.poll() is None, f"the worker exited {proc.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no worker polling after {WORKER_START_S} s:\n{log.read_text()}"
        time.sleep(0.2)


async def test_a_worker_with_only_its_own_environment_runs_a_request(
    client: Client,
    settings: Settings,
    model_server: FakeModelServer,
    fake: FakeModel,
    workspace: Path,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    script(fake)
    data = tmp_path / "worker-data"
    started_worker(own_env(model_server, settings, data), data, processes)
    handle = await start(client, frozen_elsewhere(settings, tmp_path), workspace)
    state = (await handle.result()).state
    assert state.outcome == "passed", state.error
    assert {c["model"] for c in fake.calls()} == {"coder", "reviewer"}  # the worker's models, not the default
    assert state.usage[0].host == f"127.0.0.1:{model_server.port}"
    assert (workspace / "notes.txt").read_text() == "hello\n"  # the worker's executor (local), not docker
    assert not (tmp_path / "laptop-data").exists()  # the worker's data directory


async def test_model_calls_run_on_their_own_queue(
    client: Client,
    settings: Settings,
    model_server: FakeModelServer,
    fake: FakeModel,
    workspace: Path,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    """Workflows and steps here (with no model server this worker can reach), model calls in
    another process that has one: the request passes only if every model call went there."""
    script(fake)
    data = tmp_path / "llm-data"
    data.mkdir()
    log = data / "worker.log"
    processes.append(run_worker(own_env(model_server, settings, data), log, "--queues", "llm"))
    here = settings.model_copy(update={"llm": settings.llm.model_copy(update={"base_url": DEAD_URL})})
    async with build_worker(client, here, roles=["workflows", "exec"]):
        wait_polling(log, processes[0])
        handle = await start(client, frozen_elsewhere(settings, tmp_path), workspace)
        state = (await handle.result()).state
    assert state.outcome == "passed", state.error
    assert f"'{queue_name(settings.temporal.task_queue, 'llm')}'" in log.read_text()
    assert "'" + settings.temporal.task_queue + "'" not in log.read_text()  # it served the llm queue only
    assert len(fake.calls("plan")) == 1 and len(fake.calls("post_review")) == 1


def test_queues_flag_refuses_an_unknown_queue(tmp_path: Path) -> None:
    done = subprocess.run([ITER, "worker", "--queues", "llm,gpu"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1 and "unknown queue gpu; choose from workflows,llm,exec" in done.stderr


def test_the_spawned_worker_is_not_shadowed_by_the_users_directory(
    workspace: Path, cli_env: dict[str, str], fake: FakeModel, settings: Settings
) -> None:
    """A project with its own worker.py and models/ package: `iter orchestrate` spawns a worker
    (none polls this test's queue) that still runs iter's own modules."""
    script(fake)
    (workspace / "worker.py").write_text("raise SystemExit('the project worker.py shadowed iter')\n")
    (workspace / "models").mkdir()
    (workspace / "models" / "__init__.py").write_text("raise ImportError('the project models/ shadowed iter')\n")
    wid = setup_project(workspace, cli_env)
    try:
        done = iter_cmd(workspace, cli_env, "orchestrate", "--request", "req_01", "--quiet")
        log = Path(settings.data_dir) / "worker.log"
        assert done.returncode == 0, done.stderr + (log.read_text() if log.exists() else "")
        assert "Started a background worker" in done.stderr and f"Started {wid}" in done.stdout
        assert "shadowed" not in log.read_text()
    finally:
        pid_file = Path(settings.data_dir) / "worker.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def _compose() -> list[str]:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("neither the docker compose plugin nor docker-compose is installed (apt-get install docker-compose)")


@pytest.mark.parametrize("profile", ["", "split"])
def test_docker_compose_file_is_valid(profile: str) -> None:
    args = [*_compose(), "-f", str(REPO / "docker-compose.yml"), *(["--profile", profile] if profile else [])]
    env = {**os.environ, "ITER_WORKSPACES": f"/srv/iter-{uuid.uuid4().hex[:6]}"}
    done = subprocess.run([*args, "config"], capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert {"temporal", "worker", "ollama", "worker-llm", "worker-exec"} <= set(services)
    assert "profiles" not in services["worker"]  # one worker serving every queue unless the profile is chosen
    assert services["worker-llm"]["profiles"] == services["worker-exec"]["profiles"] == ["split"]
    assert services["worker-llm"]["command"] == ["iter", "worker", "--queues", "llm"]
    for name in ("worker", "worker-llm", "worker-exec"):
        own = services[name]["environment"]
        assert own["ITER_LLM_BASE_URL"] == "http://ollama:11434" and own["ITER_TEMPORAL_ADDRESS"] == "temporal:7233"


async def test_a_worker_told_no_model_server_serves_the_one_the_request_found(
    client: Client,
    settings: Settings,
    model_server: FakeModelServer,
    fake: FakeModel,
    workspace: Path,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    """The CLI's background worker on a machine with no model server configured: the request
    carries the server the CLI found or started (its embedded llama-server), and the worker,
    whose own environment names none, calls that one, not the default localhost:11434."""
    script(fake)
    data = tmp_path / "worker-data"
    named = own_env(model_server, settings, data)
    told_nothing = {k: v for k, v in named.items() if k not in ("ITER_LLM_PROVIDER", "ITER_LLM_BASE_URL")}
    started_worker(told_nothing, data, processes)
    found = settings.model_copy(update={"data_dir": str(tmp_path / "cli-data")})  # the fake's endpoint, as resolved
    handle = await start(client, found, workspace)
    state = (await handle.result()).state
    assert state.outcome == "passed", state.error
    assert state.usage[0].host == f"127.0.0.1:{model_server.port}"
