"""The ``iter`` command: every user-facing entry point, wired in one place."""

from __future__ import annotations

import os
import sys

import typer

from cli import control, history, orchestrate, server, setup, worktree
from cli import session as session_cli
from cli.executor import executor_app
from cli.output import CliError, err_console
from cli.policy import policy_app
from cli.project import endpoint_app, feature_app, files_app, project_app, request_app
from cli.tool import tool_app
from models.config import ConfigError

app = typer.Typer(
    name="iter",
    help="Feature requests to verified code, and long unattended coding sessions, as durable Temporal workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(project_app, name="project")
app.add_typer(feature_app, name="feature")
app.add_typer(endpoint_app, name="endpoint")
app.add_typer(files_app, name="files")
app.add_typer(request_app, name="request")
app.add_typer(executor_app, name="executor")
app.add_typer(tool_app, name="tool")
app.add_typer(policy_app, name="policy")
app.command("orchestrate")(orchestrate.orchestrate)
app.command("status")(control.status)
app.command("pause")(control.pause)
app.command("resume")(control.resume)
app.command("cancel")(control.cancel)
app.command("message")(control.message)
app.command("history")(history.history)
app.command("diff")(worktree.diff)
app.command("apply")(worktree.apply)
app.command("discard")(worktree.discard)
app.command("server")(server.server)
app.command("worker")(server.worker)
app.command("setup")(setup.setup)
app.command("config")(setup.config)
app.command("doctor")(setup.doctor)
app.command("version")(setup.version)
app.command("build")(session_cli.build)
app.command("stop")(session_cli.stop)
app.command("gen-template")(session_cli.gen_template)


def main() -> None:
    try:
        _run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            err_console.print(exc.code)
        sys.stdout.flush()
        sys.stderr.flush()
        # Temporal's client threads can abort a short-lived process while the interpreter finalizes
        # (temporalio/sdk-python#300, "PyGILState_Release"): leave without finalizing.
        os._exit(code)


def _run() -> None:
    try:
        app()
    except CliError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        sys.exit(exc.code)
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
