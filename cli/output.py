"""How the CLI speaks: Rich for people, JSON for programs, one line and an exit code for errors.

Rich is imported when something is first printed, not when the CLI starts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    """A rich Console made on first use (importing rich costs start-up time `iter --help` need not pay)."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def _get(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, highlight=False)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)


console: Console = _LazyConsole(stderr=False)  # type: ignore[assignment]
err_console: Console = _LazyConsole(stderr=True)  # type: ignore[assignment]
# Set once a command has told the user what a Ctrl-C did (detached, and how to attach again), so
# main() does not add its generic "interrupted" line.
interrupt_explained = False


class CliError(Exception):
    """An error the user can act on; main() prints it as one line and exits non-zero."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    raise CliError(message, code)


def explain_interrupt(message: str) -> None:
    """Print what Ctrl-C did, on a line of its own."""
    global interrupt_explained
    interrupt_explained = True
    err_console.print(f"\n{message}", markup=False, soft_wrap=True)


def print_json(data: Any) -> None:
    if hasattr(data, "model_dump"):
        data = data.model_dump(mode="json")
    print(json.dumps(data, indent=2, default=str), flush=True)


def ok(message: str) -> None:
    console.print(f"[green]✓[/green] {message}")
