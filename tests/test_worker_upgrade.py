"""The background worker after an upgrade: it records the code it started with; once iter's code
on disk differs it leaves at its first idle moment, and a command that finds it still polling
stops it gracefully and starts one on the new code, so no request runs on old code."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.config import Settings
from temporal.code_version import MODULES, PACKAGES, ROOT, code_fingerprint
from tests import replies as r
from tests.cli import iter_cmd, setup_project
from tests.conftest import REPO, worker_env
from tests.fake_llm import FakeModel
from tests.test_worker_deployment import script

IDLE_EXIT_S = "600"  # what cli/runtime.py gives its background worker
LEAVE_S = 60  # an idle check every 15 s: leaving takes well under the idle limit


def running(pid: int) -> bool:
    """Alive and not a zombie (a worker whose parent CLI has exited may wait to be reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def data(settings: Settings) -> Iterator[Path]:
    """The data directory the CLI and its background worker share; that worker stops after the test."""
    folder = Path(settings.data_dir)
    yield folder
    pid_file = folder / "worker.pid"
    if pid_file.exists() and running(pid := int(pid_file.read_text())):
        os.kill(pid, signal.SIGTERM)


def test_the_fingerprint_covers_every_package_iter_installs() -> None:
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert sorted(p.rstrip("*") for p in setup["packages"]["find"]["include"]) == sorted(PACKAGES)
    assert [f"{m}.py" for m in setup["py-modules"]] == list(MODULES)


def test_a_command_replaces_a_background_worker_that_runs_older_code(
    workspace: Path, cli_env: dict[str, str], fake: FakeModel, data: Path
) -> None:
    script(fake)
    setup_project(workspace, cli_env)
    first = iter_cmd(workspace, cli_env, "orchestrate", "--request", "req_01", "--quiet")
    assert first.returncode == 0, first.stderr
    old = int((data / "worker.pid").read_text())
    assert json.loads((data / "worker.code").read_text()) == {"pid": old, "code": code_fingerprint()}
    # What a worker started before an upgrade recorded: the code it imported, not today's.
    (data / "worker.code").write_text(json.dumps({"pid": old, "code": "0" * 64}))
    fake.default("plan", r.plan(r.write("s1", "again.txt", "hello again\n"), r.verify("s2", "test -f again.txt")))

    again = iter_cmd(workspace, cli_env, "orchestrate", "--request", "req_01", "--again", "--quiet")
    assert again.returncode == 0, again.stdout + again.stderr + (data / "worker.log").read_text()
    assert f"The background worker ran older code (pid {old}); started one on this code" in again.stderr
    new = int((data / "worker.pid").read_text())
    assert new != old and not running(old) and running(new)
    assert json.loads((data / "worker.code").read_text()) == {"pid": new, "code": code_fingerprint()}
    status = json.loads(iter_cmd(workspace, cli_env, "status", "req_01", "--json").stdout)
    assert status["workflow_status"] == "completed" and status["outcome"] == "passed"  # on the new worker alone
    assert (workspace / "again.txt").read_text() == "hello again\n"


def test_a_background_worker_leaves_once_idle_after_an_upgrade(
    workspace: Path, cli_env: dict[str, str], fake: FakeModel, settings: Settings, data: Path, tmp_path: Path
) -> None:
    """A worker started as the CLI starts one, on a copy of iter of its own: upgrading that copy
    (a new worker.py) changes no file of this repository."""
    script(fake)
    code = tmp_path / "installed"
    for name in PACKAGES:
        shutil.copytree(ROOT / name, code / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in MODULES:
        shutil.copy2(ROOT / name, code / name)
    data.mkdir(parents=True, exist_ok=True)
    log = data / "worker.log"
    env = worker_env(settings, PYTHONPATH=str(code), PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "worker", "--idle-exit", IDLE_EXIT_S],
            cwd=data,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (data / "worker.pid").write_text(str(proc.pid))  # as cli/runtime.py's spawn_worker does
    try:
        deadline = time.monotonic() + LEAVE_S
        while "polling task queue" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert json.loads((data / "worker.code").read_text()) == {"pid": proc.pid, "code": code_fingerprint(code)}

        worker_py = code / "worker.py"
        worker_py.write_text(worker_py.read_text() + "\n# 0.1.1\n")  # the upgrade
        upgraded = time.monotonic()
        assert proc.wait(LEAVE_S) == 0, log.read_text()
        assert time.monotonic() - upgraded < LEAVE_S
        assert "iter's code on disk changed since this worker started" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # Its polls of a moment ago still show on the queues: the next command starts a worker all the same.
    setup_project(workspace, cli_env)
    done = iter_cmd(workspace, cli_env, "orchestrate", "--request", "req_01", "--quiet")
    assert done.returncode == 0, done.stderr + log.read_text()
    assert "Started a background worker" in done.stderr
    assert int((data / "worker.pid").read_text()) != proc.pid
