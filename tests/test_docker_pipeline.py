"""The request pipeline on the Docker executor: steps run in the request's container, which is gone
after PASS, after cancel, and after a worker killed with SIGKILL is followed by the next worker;
and a worker killed mid-step loses nothing and runs nothing twice."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowFailureError

from models.config import Settings
from models.request import RequestState
from tests import replies as r
from tests.conftest import REPO, worker_env
from tests.docker_env import request_containers
from tests.fake_llm import FakeModel
from tests.pipeline import start, steps_dir, wait_for
from worker import build_worker

pytestmark = pytest.mark.docker


def on_docker(settings: Settings, image: str) -> Settings:
    executor = settings.executor.model_copy(update={"backend": "docker", "image": image})
    return settings.model_copy(update={"executor": executor})


async def until(predicate: object, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.1)


class Workers:
    """Real worker processes (`python -m worker`), so that one can be killed with SIGKILL."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings, self.folder = settings, folder
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        env = worker_env(self.settings, XDG_CONFIG_HOME=str(self.folder / "config"))
        log = (self.folder / f"worker-{len(self.procs)}.log").open("wb")
        cmd = [sys.executable, "-m", "worker"]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.folder.glob("worker-*.log")))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest_asyncio.fixture
async def worker(client: Client, settings: Settings, docker_image: str) -> AsyncIterator[None]:
    """The in-process worker of these tests runs steps on Docker: the executor is the worker's own."""
    async with build_worker(client, on_docker(settings, docker_image)):
        yield


@pytest.fixture
def workers(settings: Settings, tmp_path: Path, docker_image: str) -> Iterator[Workers]:
    pool = Workers(on_docker(settings, docker_image), tmp_path)  # a worker's executor is its own
    yield pool
    pool.stop_all()


def started(settings: Settings, state: RequestState, key: str) -> bool:
    """The step's wrapper is running in the container (it wrote its pid)."""
    return (Path(settings.data_dir) / "streams" / state.run_key / key / "pid").exists()


async def test_steps_run_in_the_container_which_is_gone_after_pass(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None, docker_image: str
) -> None:
    fake.script(
        "plan",
        r.plan(
            r.write("s1", "src/calc/ops.py", r.MULTIPLY, "append"),
            r.write("s2", "tests/test_mul.py", r.MULTIPLY_TEST),
            r.run("s3", "uname -n > where.txt"),
            r.verify("s4"),
        ),
    )
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())
    handle = await start(client, on_docker(settings, docker_image), workspace)
    state = (await handle.result()).state
    assert state.outcome == "passed", state.error
    assert [x.ok for x in state.results] == [True, True, True, True], state.results
    assert (workspace / "where.txt").read_text() == "iter-step\n"  # the container's host name
    assert "1 passed" in state.results[3].output or "passed" in state.results[3].output
    assert request_containers(state.run_key) == []


async def test_cancel_kills_the_step_and_removes_the_container(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None, docker_image: str
) -> None:
    fake.script("plan", r.plan(r.run("s1", "echo started > started.txt; sleep 120", timeout_s=200), r.verify("s2")))
    fake.script("safety_review", r.safety_pass())
    handle = await start(client, on_docker(settings, docker_image), workspace)
    state = await wait_for(handle, lambda s: s.phase == "execute")
    await until(lambda: (steps_dir(state) / "started.txt").exists(), 20, "the step started")
    assert not (workspace / "started.txt").exists()  # the user's checkout is untouched while it runs
    assert len(request_containers(state.run_key)) == 1
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert request_containers(state.run_key) == []  # released before the workflow closed


async def test_worker_sigkill_mid_step_loses_nothing_and_repeats_nothing_on_docker(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, workers: Workers, docker_image: str
) -> None:
    fake.script(
        "plan",
        r.plan(
            r.run("s1", "sleep 3; echo x >> log.txt"),
            r.write("s2", "notes.txt", "appended\n", "append"),
            r.verify("s3", "cat log.txt notes.txt"),
        ),
    )
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())
    (workspace / "notes.txt").write_text("before\n")
    first = workers.start()
    handle = await start(client, on_docker(settings, docker_image), workspace)
    state = await wait_for(handle, lambda s: s.phase == "execute")
    await until(lambda: started(settings, state, "r0-s1"), 30, "the step is running")
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert len(request_containers(state.run_key)) == 1  # the step goes on in its container
    workers.start()  # its sweep keeps the container: the request still runs
    result = await asyncio.wait_for(handle.result(), 90)
    state = result.state
    assert state.outcome == "passed", (state.error, workers.logs())
    assert (workspace / "log.txt").read_text() == "x\n"
    assert (workspace / "notes.txt").read_text() == "before\nappended\n"
    assert state.results[2].output == "x\nbefore\nappended\n"
    assert request_containers(state.run_key) == []


async def test_sweep_at_worker_start_removes_the_container_of_a_request_that_ended_without_a_worker(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, workers: Workers, docker_image: str
) -> None:
    fake.script("plan", r.plan(r.run("s1", "sleep 121", timeout_s=200), r.verify("s2")))
    fake.script("safety_review", r.safety_pass())
    first = workers.start()
    handle = await start(client, on_docker(settings, docker_image), workspace)
    state = await wait_for(handle, lambda s: s.phase == "execute")
    await until(lambda: started(settings, state, "r0-s1"), 30, "the step is running")
    first.send_signal(signal.SIGKILL)
    first.wait()
    await handle.terminate("gone while no worker ran")  # nothing will release its container
    [container] = request_containers(state.run_key)
    workers.start()
    await until(lambda: request_containers(state.run_key) == [], 30, "the sweep removed the container")
    assert "of requests that had ended" in workers.logs() and container.name in workers.logs()
