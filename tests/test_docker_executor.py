"""The Docker executor against a real engine: what a step can't do, what it leaves behind, and that
a step runs exactly once whichever attempt of the activity finds it."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client

from activities.executor import Executor, ExecutorUnavailable, executor_for
from activities.executor.base import CommandOutcome, runs_root
from models.config import ExecutorSettings, Settings
from tests.docker_env import request_containers

PROCESSES = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done"
CONNECT = (
    'python3 -c "import socket,sys\n'
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3); print('CONNECTED')\n"
    "except OSError as e:\n"
    "    print('refused', e)\n"
    '"'
)


def docker_settings(image: str, **limits: float) -> ExecutorSettings:
    values = {"backend": "docker", "image": image, "memory_mb": 256, "pids_limit": 64, **limits}
    return ExecutorSettings.model_validate(values)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest_asyncio.fixture
async def executor(docker_image: str, ws: Path) -> AsyncIterator[Executor]:
    ex = executor_for(docker_settings(docker_image), ws, f"test-{uuid.uuid4().hex[:8]}.run", ws.parent / "data")
    yield ex
    await ex.close()


async def sh(ex: Executor, ws: Path, command: str, timeout_s: int = 30) -> CommandOutcome:
    run_dir = runs_root(ws.parent / "data", ex.request_key) / uuid.uuid4().hex[:8]  # type: ignore[attr-defined]
    return await ex.run(command, run_dir, timeout_s, 64_000)


# --- what a step cannot do ------------------------------------------------------------------------


@pytest.mark.docker
async def test_step_cannot_reach_the_network_or_the_hosts_loopback(executor: Executor, ws: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        out = await sh(executor, ws, f"ls /sys/class/net; {CONNECT} 1.1.1.1 443; {CONNECT} 127.0.0.1 {port}")
    lines = out.output.splitlines()
    assert out.ok, out.output
    assert lines[0] == "lo" and len(lines) == 3, out.output  # no interface but loopback
    assert "CONNECTED" not in out.output
    assert "Network is unreachable" in lines[1]
    assert "Connection refused" in lines[2]  # the container's own loopback, not the host's


@pytest.mark.docker
async def test_step_cannot_write_outside_the_workspace(executor: Executor, ws: Path) -> None:
    out = await sh(
        executor,
        ws,
        "for d in / /etc /usr /var /root /home; do touch $d/probe 2>&1 || true; done; "
        "touch ../beside.txt; echo inside > inside.txt; touch /tmp/private && echo tmp-ok",
    )
    assert out.output.count("Read-only file system") == 6, out.output
    assert "tmp-ok" in out.output  # a private, writable /tmp
    assert (ws / "inside.txt").read_text() == "inside\n"
    assert not (ws.parent / "beside.txt").exists()  # next to the workspace is not the host's


@pytest.mark.docker
async def test_step_cannot_see_host_files_or_processes(executor: Executor, ws: Path) -> None:
    secret = ws.parent / "host-only.txt"
    secret.write_text("host secret")
    marker = f"3600.{uuid.uuid4().int % 10**6}"
    bait = subprocess.Popen(["sleep", marker])
    try:
        files = await sh(executor, ws, f"cat {secret} 2>&1; cat /etc/hostname")
        procs = await sh(executor, ws, PROCESSES)
    finally:
        bait.kill()
        bait.wait()
    assert "No such file or directory" in files.output and "host secret" not in files.output
    assert files.output.splitlines()[1] == "iter-step" != socket.gethostname()
    seen = [line for line in procs.output.splitlines() if line.strip()]
    assert not [line for line in seen if marker in line or "dockerd" in line or sys.executable in line], seen
    assert len(seen) < 10, seen  # the container's own few: its init, its idle sleep, this step


@pytest.mark.docker
async def test_step_has_no_capabilities_and_no_new_privileges(executor: Executor, ws: Path) -> None:
    out = await sh(executor, ws, "grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status")
    assert "CapEff:\t0000000000000000" in out.output
    assert "CapBnd:\t0000000000000000" in out.output
    assert "NoNewPrivs:\t1" in out.output


@pytest.mark.docker
async def test_step_cannot_exceed_its_memory_limit(docker_image: str, ws: Path) -> None:
    ex = executor_for(
        docker_settings(docker_image, memory_mb=96), ws, f"mem-{uuid.uuid4().hex[:8]}.run", ws.parent / "data"
    )
    alloc = "python3 -c \"b = bytearray({mb} * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); print('allocated')\""
    try:
        small = await sh(ex, ws, alloc.format(mb=32))
        big = await sh(ex, ws, alloc.format(mb=400))
        after = await sh(ex, ws, "echo still-here")
    finally:
        await ex.close()
    assert small.ok and "allocated" in small.output  # the limit is what stops the big one
    assert not big.ok and "allocated" not in big.output
    assert big.exit_code in (137, None), big
    assert after.ok and after.output == "still-here\n"  # the container outlives the killed step


@pytest.mark.docker
async def test_step_cannot_exceed_its_pids_limit(docker_image: str, ws: Path) -> None:
    ex = executor_for(
        docker_settings(docker_image, pids_limit=24), ws, f"pids-{uuid.uuid4().hex[:8]}.run", ws.parent / "data"
    )
    spawn = (
        'python3 -c "import subprocess\n'
        "procs = []\n"
        "try:\n"
        "    for _ in range(100): procs.append(subprocess.Popen(['sleep', '30']))\n"
        "except OSError as e: print('refused', e.strerror)\n"
        "print('spawned', len(procs))\n"
        'for p in procs: p.kill()"'
    )
    try:
        out = await sh(ex, ws, spawn)
    finally:
        await ex.close()
    spawned = int(out.output.split("spawned ")[1].split()[0])
    assert "refused Resource temporarily unavailable" in out.output, out.output
    assert 5 <= spawned < 24


@pytest.mark.docker
async def test_timeout_kills_the_step_and_its_children(executor: Executor, ws: Path) -> None:
    started = time.monotonic()
    out = await sh(executor, ws, "sleep 301 & setsid sleep 302 & sleep 303; echo never", timeout_s=1)
    assert out.timed_out and not out.ok
    assert time.monotonic() - started < 5
    assert "never" not in out.output
    after = await sh(executor, ws, PROCESSES)
    assert "sleep 30" not in after.output, after.output  # the group and the escaped child are gone


@pytest.mark.docker
async def test_cancelled_step_is_killed(executor: Executor, ws: Path) -> None:
    run_dir = runs_root(ws.parent / "data", executor.request_key) / "cancelled"  # type: ignore[attr-defined]
    task = asyncio.create_task(executor.run("sleep 304", run_dir, 60, 1000))
    for _ in range(100):
        if (executor.streams / run_dir.name / "pid").exists():  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    after = await sh(executor, ws, PROCESSES)
    assert "sleep 304" not in after.output


# --- what a step leaves behind --------------------------------------------------------------------


@pytest.mark.docker
async def test_files_written_belong_to_the_workspace_owner(docker_image: str, ws: Path) -> None:
    owner = (1000, 1000) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    os.chown(ws, *owner)
    ex = executor_for(docker_settings(docker_image), ws, f"own-{uuid.uuid4().hex[:8]}.run", ws.parent / "data")
    try:
        out = await sh(ex, ws, "id -u; id -g; echo hi > made.txt; mkdir -p sub && touch sub/inner")
    finally:
        await ex.close()
    assert out.ok, out.output
    assert out.output.split() == [str(owner[0]), str(owner[1])]
    for path in (ws / "made.txt", ws / "sub", ws / "sub" / "inner"):
        assert (path.stat().st_uid, path.stat().st_gid) == owner, path


@pytest.mark.docker
async def test_one_container_per_request_reused_and_removed_on_close(docker_image: str, ws: Path) -> None:
    key = f"reuse-{uuid.uuid4().hex[:8]}.run"
    ex = executor_for(docker_settings(docker_image), ws, key, ws.parent / "data")
    first = await sh(ex, ws, "echo one > /tmp/kept; cut -d' ' -f22 /proc/1/stat")
    # A second executor for the same request (a retried activity, another worker) finds it.
    again = executor_for(docker_settings(docker_image), ws, key, ws.parent / "data")
    second = await sh(again, ws, "cat /tmp/kept; cut -d' ' -f22 /proc/1/stat")
    assert second.output.split() == ["one", first.output.strip()]
    assert len(request_containers(key)) == 1
    await again.close()
    assert request_containers(key) == []
    await ex.close()  # idempotent


@pytest.mark.docker
async def test_container_removed_between_steps_is_recreated(docker_image: str, ws: Path) -> None:
    key = f"gone-{uuid.uuid4().hex[:8]}.run"
    ex = executor_for(docker_settings(docker_image), ws, key, ws.parent / "data")
    assert (await sh(ex, ws, "true")).ok
    request_containers(key)[0].remove(force=True)
    try:
        assert (await sh(ex, ws, "echo back")).output == "back\n"
    finally:
        await ex.close()


# --- exactly once ---------------------------------------------------------------------------------


@pytest.mark.docker
async def test_retry_adopts_a_running_step_instead_of_starting_it_again(docker_image: str, ws: Path) -> None:
    key = f"adopt-{uuid.uuid4().hex[:8]}.run"
    run_dir = runs_root(ws.parent / "data", key) / "s1"
    command = "echo ran >> log.txt; sleep 1; echo done"
    dead = executor_for(docker_settings(docker_image), ws, key, ws.parent / "data")
    dead._prepare(run_dir, command)  # type: ignore[attr-defined]
    await asyncio.to_thread(dead._start, run_dir, command)  # type: ignore[attr-defined]
    # The attempt that started it is gone; the next one finds the step running and waits for it.
    retry = executor_for(docker_settings(docker_image), ws, key, ws.parent / "data")
    try:
        out = await retry.run(command, run_dir, 30, 1000)
        again = await retry.run(command, run_dir, 30, 1000)
    finally:
        await retry.close()
    assert out.ok and out.output == "done\n" and not out.interrupted
    assert again == out  # recorded
    assert (ws / "log.txt").read_text() == "ran\n"


@pytest.mark.docker
async def test_retry_starts_a_step_whose_exec_never_started(docker_image: str, ws: Path) -> None:
    key = f"unstarted-{uuid.uuid4().hex[:8]}.run"
    run_dir = runs_root(ws.parent / "data", key) / "s1"
    command = "echo ran >> log.txt"
    dead = executor_for(docker_settings(docker_image), ws, key, ws.parent / "data")
    dead._prepare(run_dir, command)  # type: ignore[attr-defined]
    cid = await asyncio.to_thread(dead.container.ensure)  # type: ignore[attr-defined]
    exec_id = await asyncio.to_thread(dead.container.exec_create, cid, ["true"])  # type: ignore[attr-defined]
    (run_dir / "exec").write_text(exec_id)  # died between recording the exec and starting it
    retry = executor_for(docker_settings(docker_image), ws, key, ws.parent / "data")
    try:
        out = await retry.run(command, run_dir, 30, 1000)
    finally:
        await retry.close()
    assert out.ok
    assert (ws / "log.txt").read_text() == "ran\n"


@pytest.mark.docker
async def test_adopted_step_is_killed_at_its_timeout(docker_image: str, ws: Path) -> None:
    key = f"adoptkill-{uuid.uuid4().hex[:8]}.run"
    run_dir = runs_root(ws.parent / "data", key) / "s1"
    dead = executor_for(docker_settings(docker_image), ws, key, ws.parent / "data")
    dead._prepare(run_dir, "sleep 305")  # type: ignore[attr-defined]
    await asyncio.to_thread(dead._start, run_dir, "sleep 305")  # type: ignore[attr-defined]
    retry = executor_for(docker_settings(docker_image), ws, key, ws.parent / "data")
    try:
        out = await retry.run("sleep 305", run_dir, 1, 1000)
        after = await sh(retry, ws, PROCESSES)
    finally:
        await retry.close()
    assert out.timed_out
    assert "sleep 305" not in after.output


# --- no Docker, no image: one line, never a fallback ----------------------------------------------


def test_no_daemon_is_one_line_that_says_how_to_fix_it(monkeypatch: pytest.MonkeyPatch, ws: Path) -> None:
    pytest.importorskip("docker")
    import activities.executor.docker_client as backend

    monkeypatch.setattr(backend, "_client", None)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{ws}/no-docker.sock")
    with pytest.raises(ExecutorUnavailable) as caught:
        executor_for(ExecutorSettings(backend="docker"), ws, "k.r", ws.parent / "data")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"Docker is not reachable at unix://{ws}/no-docker.sock (nothing answers there)")
    assert "dockerd" in message and "--executor local" in message


async def test_orchestrate_without_docker_fails_fast_and_starts_nothing(
    cli_env: dict[str, str], workspace: Path, settings: Settings, client: Client
) -> None:
    pytest.importorskip("docker")
    env = {**cli_env, "ITER_EXECUTOR": "docker", "DOCKER_HOST": f"unix://{workspace}/no-docker.sock"}

    def iter_cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "cli.main", *args]
        return subprocess.run(cmd, cwd=workspace, env=env, capture_output=True, text=True, timeout=60)

    assert (await asyncio.to_thread(iter_cli, "project", "create", "--name", "calc")).returncode == 0
    assert (await asyncio.to_thread(iter_cli, "request", "add", "--description", "add multiply")).returncode == 0
    result = await asyncio.to_thread(iter_cli, "orchestrate", "--request", "req_01")
    assert result.returncode == 1
    said = " ".join(result.stderr.split())  # Rich wraps at the terminal's width
    assert said.startswith("error: Docker is not reachable at unix://"), said
    assert "nothing answers there" in said and "--executor local" in said and "Traceback" not in said
    await asyncio.sleep(1)  # visibility lags a moment behind a start
    assert (await client.count_workflows(f"TaskQueue = '{settings.temporal.task_queue}'")).count == 0
    assert not (Path(settings.data_dir) / "worker.log").exists()  # no background worker was spawned


@pytest.mark.docker
async def test_missing_image_is_one_line(docker_image: str, ws: Path) -> None:
    ex = executor_for(
        docker_settings("iter-no-such-image:latest"), ws, f"noimg-{uuid.uuid4().hex[:8]}.run", ws.parent / "data"
    )
    expected = r"iter-no-such-image:latest does not exist; build it with `iter executor build`"
    with pytest.raises(ExecutorUnavailable, match=expected):
        await sh(ex, ws, "true")


# --- iter executor check --------------------------------------------------------------------------


@pytest.mark.docker
def test_executor_check_passes_here(docker_image: str, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "NO_COLOR": "1", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "cli.main", "executor", "check"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in (
        "no network",
        "the host's 127.0.0.1",
        "cannot write outside the workspace",
        "cannot see the host's processes",
        "cannot see the host's files",
        "killed at its timeout",
    ):
        assert name in result.stdout
    assert "FAIL" not in result.stdout
    assert [c.name for c in request_containers() if "iter-check" in c.name] == []  # removed after the check


@pytest.mark.docker
async def test_executor_check_fails_when_isolation_is_broken(
    docker_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import activities.executor.container as backend
    from activities.executor.isolation import check_isolation

    real_spec = backend.container_spec

    def weakened(*args: object) -> dict[str, object]:
        # Weakened only in ways that stay inside the container: never the host's network or PIDs.
        spec = {**real_spec(*args), "read_only": False}  # type: ignore[arg-type]
        del spec["cap_drop"], spec["security_opt"]
        return spec

    monkeypatch.setattr(backend, "container_spec", weakened)
    checks = {c.name: c.ok for c in await check_isolation(docker_settings(docker_image))}
    assert checks["cannot write outside the workspace"] is False
    assert checks["no capabilities, no new privileges"] is False
    assert checks["limits and hardening as configured"] is False
    assert checks["no network: 1.1.1.1:443 unreachable"] is True


@pytest.mark.docker
async def test_step_cannot_rewrite_iters_own_files(executor: Executor, ws: Path) -> None:
    (ws / ".iter").mkdir(exist_ok=True)
    (ws / ".iter" / "policy.yaml").write_text("deny: []\n")
    (ws / ".iter" / "runs" / "other.run").mkdir(parents=True)

    out = await sh(
        executor, ws, "echo hooks > .iter/hooks.yml; echo x > .iter/runs/other.run/rc; echo ok > mine.txt; true"
    )

    assert out.ok, out.output
    assert out.output.count("Read-only file system") == 2, out.output
    assert not (ws / ".iter" / "hooks.yml").exists() and not (ws / ".iter/runs/other.run/rc").exists()
    assert (ws / ".iter" / "policy.yaml").read_text() == "deny: []\n"
    assert (ws / "mine.txt").read_text() == "ok\n"  # the rest of the workspace stays writable
