"""No surprises, driven as a user drives the CLI: a finished request is shown, not run again; two
folders with same-named projects never meet; a re-attach needs no flags; a failed step never gets
a green tick; `iter request list` tells the truth; steps never run with iter's own virtualenv."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests import replies as r
from tests.cli import iter_cmd, iter_popen, setup_project, until_running
from tests.conftest import git
from tests.fake_llm import FakeModel
from tests.test_cli_orchestrate import script

pytestmark = pytest.mark.usefixtures("thread_worker")

def test_a_finished_request_is_shown_and_again_runs_it_anew(
    workspace: Path, cli_env: dict[str, str], fake: FakeModel
) -> None:
    script(fake)
    wid = setup_project(workspace, cli_env)
    assert iter_cmd(workspace, cli_env, "orchestrate", "--request", "req_01", "--quiet").returncode == 0
    calls = len(fake.received)
    ops = workspace / "src/calc/ops.py"
    ops.write_text(ops.read_text() + "# my own edit, keep me\n")
    edited = ops.read_text()

    shown = iter_cmd(workspace, cli_env, "orchestrate", "--request", "req_01", "--quiet")

    assert shown.returncode == 0, shown.stderr
    assert "has already run" in shown.stdout and "--again" in shown.stdout
    assert "Passed:" in shown.stdout and "Started" not in shown.stdout
    assert len(fake.received) == calls  # no model was asked: nothing ran
    assert ops.read_text() == edited

    # A new run plans afresh (creating test_mul.py again would be refused: it exists now).
    fake.default("plan", r.plan(r.write("s1", "src/calc/ops.py", "\n# again\n", "append"), r.verify("s2")))
    again = iter_cmd(workspace, cli_env, "orchestrate", "--request", "req_01", "--again", "--quiet")
    assert again.returncode == 0, again.stderr
    assert f"Started {wid}" in again.stdout and len(fake.received) > calls
    runs = [row for row in json.loads(iter_cmd(workspace, cli_env, "status", "--json").stdout)]
    assert [row["workflow_id"] for row in runs].count(wid) == 2  # a new run of the same request


def test_same_named_projects_in_two_folders_never_meet(
    workspace: Path, cli_env: dict[str, str], fake: FakeModel, tmp_path: Path
) -> None:
    script(fake)
    other = tmp_path / "elsewhere"
    shutil.copytree(workspace, other)
    shutil.rmtree(other / ".git")
    git(other, "init", "-q", "-b", "main")
    name = f"calc-{os.getpid()}-{time.monotonic_ns() % 100000}"
    first, second = setup_project(workspace, cli_env, name=name), setup_project(other, cli_env, name=name)
    assert first != second and name in first and name in second

    assert iter_cmd(workspace, cli_env, "orchestrate", "--request", "req_01", "--quiet").returncode == 0
    in_other = iter_cmd(other, cli_env, "orchestrate", "--request", "req_01", "--quiet")

    assert in_other.returncode == 0, in_other.stderr
    assert f"Started {second}" in in_other.stdout  # its own request, not the other folder's
    listed = {row["workflow_id"]: row for row in json.loads(iter_cmd(other, cli_env, "status", "--json").stdout)}
    assert listed[first]["folder"] == str(workspace) and listed[second]["folder"] == str(other)
    table = iter_cmd(other, cli_env, "status").stdout
    assert "folder" in table and other.name in table


def test_a_reattach_runs_as_the_request_was_started(workspace: Path, cli_env: dict[str, str], fake: FakeModel) -> None:
    """Started with --executor local where the Docker image is missing: the printed hint (no flags)
    attaches, and never trips over the executor the request does not use."""
    script(fake)
    fake.token_delay_s = 0.05  # several seconds of streaming
    env = {k: v for k, v in cli_env.items() if k != "ITER_EXECUTOR"}
    env["ITER_EXECUTOR_IMAGE"] = "iter-no-such-image:latest"
    setup_project(workspace, env)
    first = iter_popen(workspace, env, "orchestrate", "--request", "req_01", "--executor", "local")
    until_running(workspace, env, tries=200)
    time.sleep(1.0)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert "iter orchestrate --request req_01" in err and "iter cancel req_01" in err
    assert yaml.safe_load((workspace / ".iter/project.yaml").read_text())["requests"][0]["executor"] == "local"

    again = iter_cmd(workspace, env, "orchestrate", "--request", "req_01")

    assert again.returncode == 0, again.stderr
    assert "does not exist" not in again.stderr
    assert "Passed:" in again.stdout
    # The stream's past is not replayed: the prompt was built before the first CLI was stopped.
    # (Counting headers cannot tell: a plan's files are each written in a call of their own.)
    assert "building the prompt" not in again.stdout, again.stdout


def test_a_failed_step_never_has_a_green_tick(workspace: Path, cli_env: dict[str, str], fake: FakeModel) -> None:
    plan = r.plan(r.write("s1", "src/calc/ops.py", r.MULTIPLY, "append"), r.run("s2", "exit 3"), r.verify("s3"))
    script(fake, plan)
    fake.default("post_review", r.post_fail())
    setup_project(workspace, cli_env)

    done = iter_cmd(workspace, cli_env, "orchestrate", "--request", "req_01", "--quiet")

    execute = next(line for line in done.stdout.splitlines() if "Execute:" in line)
    assert "1 failed" in execute and "✓" not in execute, done.stdout


def test_request_list_shows_a_cancelled_request(workspace: Path, cli_env: dict[str, str], fake: FakeModel) -> None:
    script(fake)
    fake.token_delay_s = 0.1
    setup_project(workspace, cli_env)
    started = iter_cmd(workspace, cli_env, "orchestrate", "--request", "req_01", "--detach")
    assert started.returncode == 0 and "iter cancel req_01" in started.stdout
    assert iter_cmd(workspace, cli_env, "cancel", "req_01").returncode == 0

    status = ""
    for _ in range(60):
        status = json.loads(iter_cmd(workspace, cli_env, "request", "list", "--json").stdout)[0]["status"]
        if status != "running":
            break
        time.sleep(0.5)
    assert status == "cancelled"


def test_steps_never_run_with_iters_own_virtualenv(workspace: Path, cli_env: dict[str, str], fake: FakeModel) -> None:
    plan = r.plan(r.run("s1", 'echo "$PATH" > path.txt'), r.verify("s2"))
    script(fake, plan)
    setup_project(workspace, cli_env)

    done = iter_cmd(workspace, cli_env, "orchestrate", "--request", "req_01", "--quiet")

    assert done.returncode == 0, done.stdout + done.stderr
    own = os.path.realpath(Path(sys.prefix) / "bin")
    step_path = (workspace / "path.txt").read_text().strip().split(os.pathsep)
    assert own not in [os.path.realpath(p) for p in step_path], step_path


def test_project_file_errors_name_line_and_field_and_keep_the_file(
    workspace: Path, cli_env: dict[str, str]
) -> None:
    setup_project(workspace, cli_env)
    path = workspace / ".iter/project.yaml"
    data = yaml.safe_load(path.read_text())
    assert len(data["id"]) == 8

    data["team_notes"] = "ours"  # a key iter does not know
    data["requests"][0]["owner"] = "ana"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o640)
    assert iter_cmd(workspace, cli_env, "request", "add", "--description", "Add divide").returncode == 0
    kept = yaml.safe_load(path.read_text())
    assert kept["team_notes"] == "ours" and kept["requests"][0]["owner"] == "ana" and kept["id"] == data["id"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640

    text = path.read_text()
    path.write_text(text.replace("status: new", "status: nonsense", 1))
    bad_field = iter_cmd(workspace, cli_env, "request", "list")
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "nonsense" in t)
    assert bad_field.returncode == 1
    assert f"line {line}" in bad_field.stderr and "field requests[0].status" in bad_field.stderr, bad_field.stderr

    path.write_text(text + "features: [oops\n")
    broken = iter_cmd(workspace, cli_env, "request", "list")
    assert broken.returncode == 1 and "line " in broken.stderr and "column" in broken.stderr, broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1
