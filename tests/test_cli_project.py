"""The project model through the `iter` CLI: what a user types, what they see, what is stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli import iter_cmd, setup_project


def test_project_file_records_what_the_user_adds(workspace: Path, cli_env: dict[str, str]) -> None:
    setup_project(workspace, cli_env, name="calc")
    assert (
        iter_cmd(
            workspace, cli_env, "endpoint", "add", "--name", "Calc", "--path", "/calc", "--method", "post"
        ).returncode
        == 0
    )
    second = iter_cmd(workspace, cli_env, "request", "add", "--description", "Add divide")

    assert second.stdout.strip() == "req_02"
    data = yaml.safe_load((workspace / ".iter/project.yaml").read_text())
    assert data["name"] == "calc"
    assert data["features"] == [{"id": "arithmetic", "name": "Arithmetic", "type": "feature"}]
    assert data["endpoints"] == [{"name": "Calc", "path": "/calc", "method": "POST"}]
    assert data["selected_files"] == ["src/calc/ops.py", "tests/test_ops.py"]
    assert [r["id"] for r in data["requests"]] == ["req_01", "req_02"]
    assert data["requests"][0]["criteria"] == ["multiply(3, 4) == 12"]
    listed = json.loads(iter_cmd(workspace, cli_env, "request", "list", "--json").stdout)
    assert [r["status"] for r in listed] == ["new", "new"]
    shown = json.loads(iter_cmd(workspace, cli_env, "request", "show", "req_01", "--json").stdout)
    assert shown["feature"] == "arithmetic"
    assert (workspace / ".iter/.gitignore").read_text().startswith("runs/")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("feature", "add", "--name", "Arithmetic"), "exists already"),
        (("request", "add", "--description", "x", "--feature", "nope"), "unknown feature 'nope'"),
        (("files", "select", "missing.py"), "file not found: missing.py"),
        (("files", "select", "../outside.txt"), "outside the project folder"),
        (("endpoint", "add", "--name", "E", "--path", "/e", "--method", "FETCH"), "unknown method 'FETCH'"),
        (("endpoint", "add", "--name", "E", "--path", "e"), "must start with /"),
        (("request", "show", "req_09"), "no request 'req_09'"),
        (("project", "create", "--name", "again"), "a project already exists here"),
        (("orchestrate", "--request", "req_01", "--executor", "vm"), "unknown executor 'vm'"),
        (("orchestrate", "--request", "req_07"), "no request 'req_07'"),
    ],
)
def test_wrong_input_is_one_line_and_changes_nothing(
    workspace: Path, cli_env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    setup_project(workspace, cli_env)
    (workspace.parent / "outside.txt").write_text("x")
    before = (workspace / ".iter/project.yaml").read_bytes()

    done = iter_cmd(workspace, cli_env, *args)

    assert done.returncode != 0
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert (workspace / ".iter/project.yaml").read_bytes() == before


def test_commands_outside_a_project_say_how_to_start(tmp_path: Path, cli_env: dict[str, str]) -> None:
    done = iter_cmd(tmp_path, cli_env, "request", "add", "--description", "x")
    assert done.returncode == 1
    assert "no iter project here; create one with `iter project create --name NAME`" in done.stderr


def test_unknown_flag_is_refused_by_the_parser(workspace: Path, cli_env: dict[str, str]) -> None:
    done = iter_cmd(workspace, cli_env, "project", "create", "--nmae", "x")
    assert done.returncode == 2
    assert "No such option" in done.stderr and "--nmae" in done.stderr
