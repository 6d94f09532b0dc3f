"""A Docker daemon that goes away during a request is waited for, and `iter status` says so.

The shared dockerd is never restarted: the worker reaches it through a unix-socket proxy this test
starts and stops, which is what the worker sees of a daemon restart (connections refused, then
back). The step goes on in its container meanwhile and is adopted, not run again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.client import Client

from models.config import Settings
from tests import replies as r
from tests.fake_llm import FakeModel
from tests.pipeline import start, wait_for
from tests.test_docker_pipeline import Workers, on_docker, until

pytestmark = pytest.mark.docker

DOCKER_SOCKET = "/var/run/docker.sock"


class SocketProxy:
    """Forwards a unix socket to the Docker daemon's; ``stop`` drops it and every connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self.server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def stop(self) -> None:
        assert self.server
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        self.writers.clear()
        self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(DOCKER_SOCKET)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def iter_status(cli_env: dict[str, str], workspace: Path, workflow_id: str) -> dict[str, object]:
    cmd = [sys.executable, "-m", "cli.main", "status", workflow_id, "--json"]
    done = subprocess.run(cmd, cwd=workspace, env=cli_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data: dict[str, object] = json.loads(done.stdout)
    return data


async def test_a_docker_outage_is_waited_out_and_status_says_so(
    client: Client,
    settings: Settings,
    workspace: Path,
    fake: FakeModel,
    tmp_path: Path,
    docker_image: str,
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = SocketProxy(tmp_path / "docker.sock")
    await proxy.start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{proxy.path}")  # the spawned worker's only way to Docker
    fake.default("plan", r.plan(r.run("s1", "sleep 6; echo once >> log.txt"), r.verify("s2", "cat log.txt")))
    fake.default("safety_review", r.safety_pass())
    fake.default("post_review", r.post_pass())
    workers = Workers(on_docker(settings, docker_image), tmp_path)  # the worker's executor is its own
    try:
        workers.start()
        handle = await start(client, on_docker(settings, docker_image), workspace)
        state = await wait_for(handle, lambda s: s.phase == "execute", timeout=60)
        streams = Path(settings.data_dir) / "streams" / state.run_key / "r0-s1"
        await until(lambda: (streams / "pid").exists(), 60, "the step runs in its container")
        await proxy.stop()  # the daemon "restarts": nothing answers at DOCKER_HOST

        said: list[str] = []

        def waiting() -> bool:
            lines = iter_status(cli_env, workspace, handle.id).get("waiting") or []
            said[:] = [str(x) for x in lines]  # type: ignore[union-attr]
            return any("waiting for Docker" in line for line in said)

        for _ in range(60):
            if await asyncio.to_thread(waiting):
                break
            await asyncio.sleep(0.5)
        assert any("waiting for Docker: Docker is not reachable at unix://" in line for line in said), said
        assert (await handle.describe()).status.name == "RUNNING"  # not failed: it waits

        await proxy.start()  # back
        result = await asyncio.wait_for(handle.result(), timeout=120)
    finally:
        workers.stop_all()
        with contextlib.suppress(Exception):
            await proxy.stop()

    state = result.state
    assert state.outcome == "passed", (state.error, workers.logs()[-2000:])
    assert (workspace / "log.txt").read_text() == "once\n"  # adopted after the outage, not run again
    assert state.results[1].output == "once\n"
