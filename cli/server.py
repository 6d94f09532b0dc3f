"""``iter server`` and ``iter worker``: the embedded Temporal and a standalone worker, in the foreground."""

from __future__ import annotations

import typer

from cli import runtime
from cli.output import console, fail
from temporal import devserver


def server() -> None:
    """Run the embedded Temporal dev server in the foreground (SQLite under the data dir, UI on :8233)."""
    cfg = runtime.settings()
    if cfg.temporal.address:
        fail(f"ITER_TEMPORAL_ADDRESS is set ({cfg.temporal.address}); iter uses that cluster and starts no server")
    if devserver.port_open(devserver.DEV_HOST, devserver.DEV_PORT):
        # Not an error: what the user wants (a server here) is already true.
        console.print(
            f"A Temporal server already listens on {devserver.DEV_HOST}:{devserver.DEV_PORT}; "
            "iter uses it as it is, nothing to start",
            soft_wrap=True,
        )
        return
    console.print(
        f"Temporal dev server on {devserver.DEV_HOST}:{devserver.DEV_PORT}, "
        f"web UI http://localhost:{cfg.temporal.ui_port}, data {devserver.db_path(cfg)}"
    )
    try:
        devserver.run_foreground(cfg)
    except devserver.DevServerError as exc:
        fail(str(exc))


def worker(
    idle_exit: float = typer.Option(0.0, "--idle-exit", help="Leave after this many idle seconds (0: never)."),
    queues: str = typer.Option(
        "workflows,llm,exec", "--queues", help="The task queues to serve: workflows, llm (model calls), exec (steps)."
    ),
) -> None:
    """Run a worker in the foreground, for unattended and multi-machine use."""
    from models.queues import parse_roles
    from worker import run_worker

    try:
        roles = parse_roles(queues)
    except ValueError as exc:
        fail(f"--queues: {exc}")
    cfg = runtime.settings()
    try:
        runtime.run(run_worker(cfg, idle_exit, say=runtime.say, roles=roles))
    except KeyboardInterrupt:
        console.print("worker stopped")
