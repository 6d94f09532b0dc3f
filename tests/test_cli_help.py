"""Every command explains itself: help for each command, option and argument, values named after
their option (no ``<bool>``/``<str>``), and `iter --help` lists what each command says it does."""

from __future__ import annotations

from typing import Any

import pytest

from cli.main import COMMANDS, load_command
from tests.cli import iter_cmd


def _walk(command: Any, path: str) -> list[tuple[str, Any]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _walk(sub, f"{path} {name}")
    return found


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_option_and_argument_has_help(name: str) -> None:
    missing = []
    for path, command in _walk(load_command(name), name):
        if not (command.help or command.short_help):
            missing.append(f"{path}: the command")
        for param in command.params:
            if param.name != "help" and not getattr(param, "help", None):
                missing.append(f"{path}: {param.param_type_name} {param.name}")
    assert not missing, "no help text for:\n" + "\n".join(missing)


def test_help_is_plain_and_names_values(tmp_path: Any) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for args in (("--help",), ("orchestrate", "--help"), ("status", "--help"), ("feature", "add", "--help")):
        done = iter_cmd(tmp_path, env, *args, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "<bool>" not in done.stdout and "<str>" not in done.stdout, done.stdout
    listing = iter_cmd(tmp_path, env, "--help", timeout=60).stdout
    for name in COMMANDS:
        assert f"  {name} " in listing, f"{name} missing from iter --help:\n{listing}"
    assert "--request REQUEST" in iter_cmd(tmp_path, env, "orchestrate", "--help", timeout=60).stdout
