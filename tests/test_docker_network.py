"""Network only for the steps approved for it: a project allow rule with ``network: true`` in
``.iter/policy.yaml``, in a safety review the whole plan passed.

The workflows pass the approved ids to the execution activity (checked in the history, on the local
backend); the Docker executor runs such a step in a container of its own on ``executor.network``
and every other step in the request's network-less container. This engine runs with
``--bridge=none`` and no traffic may leave the machine, so the network used is ``host``
(``ITER_EXECUTOR_NETWORK=host``) and the only peer is an HTTP server of the test on 127.0.0.1: from
the request's container, 127.0.0.1 is the container's own loopback, where nothing listens."""

from __future__ import annotations

import asyncio
import shlex
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.executor.base import ExecutorUnavailable, runs_root
from cli.project_store import scope
from models.config import ConfigError, ExecutorSettings, Settings, load_settings
from models.project import session_workflow_id
from models.request import ExecuteInput
from tests import replies as r
from tests import session_replies as s
from tests.docker_env import request_containers
from tests.fake_llm import FakeModel
from tests.pipeline import run_request
from worker import build_worker

TOKEN = f"iter-net-{uuid.uuid4().hex[:12]}"
# One line, no '/' literal (point 1 would see a path): fetch http://<argv[1]> and print the body.
FETCH = "import urllib.request as u, sys; print(u.urlopen('http://' + sys.argv[1], timeout=5).read().decode())"
# The same, as a check that passes when nothing answers: it prints why the connection failed.
PROBE = (
    "import os, socket, sys; h, p = sys.argv[1].split(':'); r = socket.socket().connect_ex((h, int(p))); "
    "print(os.strerror(r) if r else 'connected'); sys.exit(0 if r else 1)"
)
POLICY = r"""allow:
  - pattern: '^python3 -c import urllib\.request as u, sys; .* 127\.0\.0\.1:\d+ approved$'
    points: [5]
    network: true
    reason: the test's server on the host's loopback
  - pattern: '^python3 -c import urllib\.request as u, sys; .* 127\.0\.0\.1:\d+ plain$'
    points: [5]
    reason: allowed to run, but not approved for network
  - pattern: '^python3 -c import os, socket, sys; .* 127\.0\.0\.1:\d+ plain$'
    points: [5]
    reason: allowed to run, but not approved for network
"""


class LoopbackServer:
    """Answers TOKEN on 127.0.0.1 (a free port) and counts the requests that reached it."""

    def __init__(self) -> None:
        hits: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                body = TOKEN.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.hits = hits
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def fetch(self, tag: str) -> str:
        """The step's command; ``tag`` (approved or plain) picks the policy rule that covers it."""
        return f"python3 -c {shlex.quote(FETCH)} 127.0.0.1:{self.port} {tag}"

    def refused(self) -> str:
        """A verify command that passes only when this server cannot be reached (no approval)."""
        return f"python3 -c {shlex.quote(PROBE)} 127.0.0.1:{self.port} plain"


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def with_policy(workspace: Path) -> None:
    (workspace / ".iter").mkdir(exist_ok=True)
    (workspace / ".iter" / "policy.yaml").write_text(POLICY)


@pytest.fixture
def host_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """``executor.network`` as a user sets it here: through ITER_EXECUTOR_NETWORK."""
    monkeypatch.setenv("ITER_EXECUTOR_NETWORK", "host")
    network = load_settings(cwd=tmp_path).executor.network
    assert network == "host"
    return network


def on_docker(settings: Settings, image: str, network: str) -> Settings:
    executor = settings.executor.model_copy(update={"backend": "docker", "image": image, "network": network})
    return settings.model_copy(update={"executor": executor})


@pytest_asyncio.fixture
async def docker_worker(
    client: Client, settings: Settings, docker_image: str, host_network: str
) -> AsyncIterator[None]:
    """A worker whose executor is Docker on the host network: a worker's executor is its own, not
    the request's (the ``worker`` fixture's would run every step on the host, network and all)."""
    async with build_worker(client, on_docker(settings, docker_image, host_network)):
        yield


async def execute_inputs(client: Client, workflow_id: str) -> list[ExecuteInput]:
    """The input of every execute_steps activity the workflow scheduled, decoded from its history."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    found = []
    for event in history.events:
        if not event.HasField("activity_task_scheduled_event_attributes"):
            continue
        attrs = event.activity_task_scheduled_event_attributes
        if attrs.activity_type.name == "execute_steps":
            [inp] = pydantic_data_converter.payload_converter.from_payloads(list(attrs.input.payloads), [ExecuteInput])
            found.append(inp)
    return found


# --- the workflows pass only approved ids (local backend: no Docker needed) ------------------------


async def test_request_passes_only_the_approved_steps_reviewed_as_they_run(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None, server: LoopbackServer
) -> None:
    with_policy(workspace)
    fake.script("plan", r.plan(r.run("s1", server.fetch("approved")), r.verify("s2", server.fetch("plain"))))
    fake.default("safety_review", r.safety_pass())
    # The fix step is approved under its new id (f1-fetch), reviewed with the rerun of s2.
    fake.script("post_review", r.post_fail(r.run("fetch", server.fetch("approved"))), r.post_pass())
    state = await run_request(client, settings, workspace)
    assert state.outcome == "passed", state.error
    inputs = await execute_inputs(client, state.workflow_id)
    assert [[s.id for s in i.steps] for i in inputs] == [["s1", "s2"], ["f1-fetch", "s2"]]
    assert [i.network_steps for i in inputs] == [["s1"], ["f1-fetch"]]


async def test_session_passes_only_the_approved_step(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None, server: LoopbackServer
) -> None:
    with_policy(workspace)
    s.reviewers_pass(fake)
    fake.script(
        "session_plan",
        s.session_plan(
            r.run("s1", server.fetch("approved")), r.verify("s2", server.fetch("plain")), session_complete=True
        ),
    )
    inp = s.session_input(settings, workspace, iterations=1)
    state = await s.run_session(client, settings, inp)
    assert [x.outcome for x in state.summaries] == ["passed"], state.events[-5:]
    inputs = await execute_inputs(client, session_workflow_id(inp.name, scope(Path(inp.workspace))))
    assert [([s.id for s in i.steps], i.network_steps) for i in inputs] == [(["s1"], ["s1"]), (["s2"], [])]


async def test_the_same_step_without_the_allow_rule_is_blocked_and_never_runs(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel, worker: None, server: LoopbackServer
) -> None:
    # Network without an allow rule is held for a person; an unattended project blocks what is held.
    (workspace / ".iter").mkdir(exist_ok=True)
    (workspace / ".iter" / "policy.yaml").write_text("hold: block\n")
    fake.script("plan", r.plan(r.run("s1", server.fetch("approved")), r.verify("s2", "true")))
    fake.default("safety_review", r.safety_pass())
    strict = settings.model_copy(update={"bounds": settings.bounds.model_copy(update={"max_block_replans": 0})})
    state = await run_request(client, strict, workspace)
    assert state.outcome == "blocked", state.error
    assert any(f.point == 5 and f.step_id == "s1" and f.source == "rules" for f in state.findings), state.findings
    assert state.results == [] and server.hits == []
    assert await execute_inputs(client, state.workflow_id) == []


def test_executor_network_is_a_network_name() -> None:
    assert ExecutorSettings().network == "bridge"
    assert load_settings(env={"ITER_EXECUTOR_NETWORK": "iter-net"}).executor.network == "iter-net"
    with pytest.raises(ConfigError, match=r"executor\.network"):
        load_settings(env={"ITER_EXECUTOR_NETWORK": "container:abc"})


# --- Docker enforces it ----------------------------------------------------------------------------


@pytest.mark.docker
async def test_approved_step_reaches_the_host_loopback_and_a_plain_one_does_not(
    client: Client,
    settings: Settings,
    workspace: Path,
    fake: FakeModel,
    docker_worker: None,
    server: LoopbackServer,
    docker_image: str,
    host_network: str,
) -> None:
    with_policy(workspace)
    # The plain step is the verify: a PASS needs a verify that passed, so it passes when refused.
    fake.script("plan", r.plan(r.run("s1", server.fetch("approved")), r.verify("s2", server.refused())))
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())
    state = await run_request(client, on_docker(settings, docker_image, host_network), workspace)
    assert state.outcome == "passed", state.error
    approved, plain = state.results
    assert approved.ok and TOKEN in approved.output, approved
    assert plain.ok and "Connection refused" in plain.output, plain
    assert server.hits == ["/"]  # only the approved step reached it
    assert request_containers(state.run_key) == []  # the request's and the step's: both gone


def docker_executor(image: str, network: str, workspace: Path) -> Any:
    from activities.executor.docker import DockerExecutor

    settings = ExecutorSettings(image=image, network=network, step_timeout_s=60)
    key = f"iter-net-test-{uuid.uuid4().hex[:8]}.{uuid.uuid4()}"
    return DockerExecutor(settings, workspace, key, workspace.parent / f"{workspace.name}-data")


@pytest.mark.docker
async def test_executor_gives_network_to_the_approved_step_only_in_its_own_container(
    tmp_path: Path, server: LoopbackServer, docker_image: str, host_network: str
) -> None:
    from activities.executor.container_spec import LABEL_STEP

    ex = docker_executor(docker_image, host_network, tmp_path)
    root = runs_root(ex.data, ex.request_key)
    try:
        denied = await ex.run(server.fetch("plain"), root / "k1", 60, 10_000)
        assert not denied.ok and "Connection refused" in denied.output, denied
        assert server.hits == []
        allowed = await ex.run(server.fetch("approved"), root / "k2", 60, 10_000, network=True)
        assert allowed.ok and TOKEN in allowed.output, allowed
        assert server.hits == ["/"]
        [main] = request_containers(ex.request_key)  # the step's own container is gone already
        assert main.name == ex.container.name and LABEL_STEP not in main.labels
        assert main.attrs["HostConfig"]["NetworkMode"] == "none"
        again = await ex.run(server.fetch("plain"), root / "k3", 60, 10_000)
        assert not again.ok and server.hits == ["/"]  # no network left behind in the main container
    finally:
        await ex.close()
    assert request_containers(ex.request_key) == []


@pytest.mark.docker
async def test_a_retried_attempt_adopts_the_network_step_a_dead_one_started(
    tmp_path: Path, server: LoopbackServer, docker_image: str, host_network: str
) -> None:
    from activities.executor.container_spec import LABEL_STEP
    from activities.executor.docker import DockerExecutor

    ex = docker_executor(docker_image, host_network, tmp_path)
    run_dir = runs_root(ex.data, ex.request_key) / "i1-s1"
    command = f"echo once >> {tmp_path}/count.txt; sleep 1; {server.fetch('approved')}"
    # The dead attempt: it made the step's container and started the step, then vanished.
    dead = DockerExecutor(ex.settings, tmp_path, ex.request_key, ex.data, network_step=run_dir.name)
    try:
        dead._prepare(run_dir, command)
        await asyncio.to_thread(dead._start, run_dir, command)
        [box] = [c for c in request_containers(ex.request_key) if LABEL_STEP in c.labels]
        assert box.labels[LABEL_STEP] == "i1-s1" and box.attrs["HostConfig"]["NetworkMode"] == "host"
        outcome = await ex.run(command, run_dir, 60, 10_000, network=True)
        assert outcome.ok and TOKEN in outcome.output, outcome
        assert (tmp_path / "count.txt").read_text() == "once\n"  # adopted, not started again
        assert server.hits == ["/"]
        assert [c.name for c in request_containers(ex.request_key)] == []  # the step's container went
    finally:
        await ex.close()


@pytest.mark.docker
async def test_left_step_containers_go_with_the_request_and_with_the_sweep(
    client: Client, tmp_path: Path, docker_image: str, host_network: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from activities.executor import sweep
    from activities.executor.docker import DockerExecutor

    ex = docker_executor(docker_image, host_network, tmp_path)
    try:
        left = DockerExecutor(ex.settings, tmp_path, ex.request_key, ex.data, network_step="i1-s1")
        await asyncio.to_thread(left.container.ensure)
        await asyncio.to_thread(ex.container.ensure)
        assert len(request_containers(ex.request_key)) == 2
        await ex.close()  # the request's release
        assert request_containers(ex.request_key) == []

        # A worker died with a step container of a request this Temporal service does not know. The
        # sweep sees only this test's containers: other idle ones on this engine are not its business.
        left = DockerExecutor(ex.settings, tmp_path, ex.request_key, ex.data, network_step="i1-s1")
        await asyncio.to_thread(left.container.ensure)
        monkeypatch.setattr(sweep, "_request_containers", lambda: request_containers(ex.request_key))
        removed = await sweep.sweep_containers(client, say=lambda _: None)
        assert left.container.name in removed
        assert request_containers(ex.request_key) == []
    finally:
        await ex.close()


@pytest.mark.docker
async def test_a_network_docker_does_not_have_fails_in_one_line(tmp_path: Path, docker_image: str) -> None:
    ex = docker_executor(docker_image, "iter-no-such-network", tmp_path)
    try:
        with pytest.raises(ExecutorUnavailable, match="the executor network 'iter-no-such-network' does not exist"):
            await ex.run("true", runs_root(ex.data, ex.request_key) / "k1", 60, 10_000, network=True)
        assert request_containers(ex.request_key) == []
    finally:
        await ex.close()
