"""The ``iter`` command: every user-facing entry point, wired in one place.

Start-up time matters (every command pays it), so this module imports nothing heavy: the table
below names each command's module, and only the module of the command being run is imported
(``iter --help`` imports none of them). A new command is one line in COMMANDS.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# name -> ("module:attribute", one-line help shown by `iter --help`). The attribute is a command
# function or a Typer sub-app. tests/test_cli_help.py checks each line against the command.
COMMANDS: dict[str, tuple[str, str]] = {
    "orchestrate": ("cli.orchestrate:orchestrate", "Run a request: prompt, stream, review, execute, verify."),
    "status": ("cli.control:status", "Show where a request or session stands (or list them all)."),
    "pause": ("cli.control:pause", "Pause at the next phase boundary; nothing in flight is lost."),
    "resume": ("cli.control:resume", "Resume a paused request or session."),
    "cancel": ("cli.control:cancel", "Cancel: the current step is stopped, the executor released, the history kept."),
    "message": ("cli.control:message", "Queue guidance; the next model call reads it."),
    "approve": ("cli.holds:approve", "Let a held step run: the gate found it risky but plausibly legitimate."),
    "deny": ("cli.holds:deny", "Refuse a held step; a request plans again with your reason."),
    "watch": ("cli.watch:watch", "Follow a request or session live: full screen on a terminal, lines otherwise."),
    "history": ("cli.history:history", "The audit trail of a request or session, from its Temporal history."),
    "diff": ("cli.worktree:diff", "Show what a request or session changed on its branch iter/<ID>."),
    "apply": ("cli.worktree:apply", "Land the change of iter/<ID> in your checkout (refused if you edited its files)."),
    "discard": ("cli.worktree:discard", "Drop the change of iter/<ID>: the branch goes, your checkout stays as it is."),
    "dashboard": ("cli.dashboard:dashboard", "Serve the web dashboard: requests, sessions, live output, controls."),
    "build": ("cli.session:build", "Run the session loop over a spec's tasks, durably: resume it any time, steer it."),
    "stop": ("cli.session:stop", "End a session after its current iteration (session_end hooks run)."),
    "gen-template": ("cli.session:gen_template", "Write the prompt template to edit (`iter build --template`)."),
    "project": ("cli.project:project_app", "Create and show the project in this folder."),
    "feature": ("cli.project:feature_app", "Features of the project."),
    "endpoint": ("cli.project:endpoint_app", "HTTP endpoints of the project."),
    "files": ("cli.project:files_app", "Files selected as context for every request."),
    "request": ("cli.project:request_app", "Feature requests."),
    "tool": ("cli.tool:tool_app", "Session tools: tasks, notes, summaries, session-complete."),
    "policy": ("cli.policy:policy_app", "The deterministic safety rules (8 points) that no model can overrule."),
    "executor": ("cli.executor:executor_app", "The Docker executor: build its image (and base), check its isolation."),
    "model": ("cli.model:model_app", "The models: list them and their roles; serve or stop the embedded llama-server."),
    "server": ("cli.server:server", "Run the embedded Temporal dev server in the foreground."),
    "worker": ("cli.server:worker", "Run a worker in the foreground, for unattended and multi-machine use."),
    "setup": ("cli.setup:setup", "Write a config file with the model and executor to use."),
    "config": ("cli.setup:config", "Show each setting, its value and where it comes from (flag, env, file, default)."),
    "doctor": ("cli.setup:doctor", "Check what iter needs: Temporal, the model server, the executor."),
    "version": ("cli.setup:version", "Show the version of iter and its engine."),
    "models": ("cli.models:models", "The same as `iter model list`: the models, their roles, and which answer now."),
}  # fmt: skip

HELP = "Feature requests to verified code, and long unattended coding sessions, as durable Temporal workflows."
INTERRUPTED = 130


def load_command(name: str) -> Any:
    """The click command for ``name``, importing its module now (and only its module)."""
    import importlib

    import typer
    import typer.main

    from cli import helptext

    target, short = COMMANDS[name]
    module, _, attribute = target.partition(":")
    obj = getattr(importlib.import_module(module), attribute)
    if isinstance(obj, typer.Typer):
        obj.info.name = name
        obj._add_completion = False
        if obj.info.help is None:
            obj.info.help = short
        command = typer.main.get_command(obj)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name, short_help=short)(obj)
        command = typer.main.get_command(single)
    command.name = name
    helptext.plain(command)
    return command


def build_app() -> Any:
    import typer
    from typer.core import TyperGroup

    class LazyGroup(TyperGroup):
        """Lists commands from COMMANDS, imports a command's module only when it runs."""

        def list_commands(self, ctx: Any) -> list[str]:
            return [*self.commands, *(n for n in COMMANDS if n not in self.commands)]

        def get_command(self, ctx: Any, cmd_name: str) -> Any:
            if cmd_name in self.commands:
                return self.commands[cmd_name]
            if cmd_name not in COMMANDS:
                return None
            self.commands[cmd_name] = load_command(cmd_name)
            return self.commands[cmd_name]

        def format_commands(self, ctx: Any, formatter: Any) -> None:
            rows = [(n, COMMANDS[n][1] if n in COMMANDS else "") for n in self.list_commands(ctx)]
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    app = typer.Typer(
        name="iter",
        help=HELP,
        cls=LazyGroup,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
    )

    @app.callback()
    def _root() -> None:
        pass

    _root.__doc__ = HELP
    return app


def main() -> None:
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        global _interrupted
        _interrupted = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    try:
        code = _run()
    except KeyboardInterrupt:
        code = INTERRUPTED
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            sys.stderr.write(exc.code + "\n")
    try:
        if _interrupted and code == INTERRUPTED and not _said_why():
            # Ctrl-C at any moment: one line, the conventional exit status, no traceback.
            sys.stderr.write("\ninterrupted\n")
        sys.stdout.flush()
        sys.stderr.flush()
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    # Temporal's client threads can abort a short-lived process while the interpreter finalizes
    # (temporalio/sdk-python#300, "PyGILState_Release"): leave without finalizing.
    os._exit(code)


_interrupted = False


def _said_why() -> bool:
    """Whether the command already explained the interruption (a detach says how to attach again)."""
    output = sys.modules.get("cli.output")
    return bool(output and output.interrupt_explained)


def _run() -> int:
    from cli.output import CliError, err_console

    try:
        build_app()()
    except CliError as exc:
        err_console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        return exc.code
    except Exception as exc:
        config = sys.modules.get("models.config")
        if config is not None and isinstance(exc, config.ConfigError):
            err_console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
            return 2
        raise
    return 0


if __name__ == "__main__":
    main()
