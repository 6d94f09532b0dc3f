"""How the CLI speaks: Rich for people, JSON for programs, one line and an exit code for errors."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class CliError(Exception):
    """An error the user can act on; main() prints it as one line and exits non-zero."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    raise CliError(message, code)


def print_json(data: Any) -> None:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    typer.echo(json.dumps(data, indent=2, default=str))


def ok(message: str) -> None:
    console.print(f"[green]✓[/green] {message}")
