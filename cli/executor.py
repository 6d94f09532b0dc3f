"""``iter executor``: build the executor image, prove its isolation here, sweep stale containers."""

from __future__ import annotations

from pathlib import Path

import typer

from cli import runtime
from cli.output import console, fail, print_json
from models.config import Settings

executor_app = typer.Typer(help="The Docker executor: build its image, check its isolation.", no_args_is_help=True)


def _docker_missing() -> str:
    return "the Docker executor needs the docker package: reinstall iter (pip install -e .), or choose --executor local"


def require_executor(cfg: Settings) -> None:
    """Fail in one line, before anything starts, when the chosen executor cannot run steps here."""
    if cfg.executor.backend != "docker":
        return
    try:
        from activities.executor.base import ExecutorUnavailable
        from activities.executor.docker_client import preflight
    except ImportError:
        fail(_docker_missing())
    try:
        preflight(cfg.executor)
    except ExecutorUnavailable as exc:
        fail(str(exc))


def _image_exists(client: object, name: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(name)  # type: ignore[attr-defined]
    except ImageNotFound:
        return False
    return True


@executor_app.command("build")
def build(
    tag: str | None = typer.Option(None, "--tag", help="The image to build (default: the configured executor.image)."),
    file: Path | None = typer.Option(None, "--file", help="The Dockerfile (default: executor/Dockerfile in the repo)."),
    base: str | None = typer.Option(None, "--base", help="The base image (default: iter-executor-base:latest)."),
) -> None:
    """Build the executor image from executor/Dockerfile; its base too when that is missing (from a
    Debian image when a registry answers, with debootstrap when none does)."""
    cfg = runtime.settings()
    try:
        from activities.executor.base import ExecutorUnavailable
        from activities.executor.base_image import BaseImageError, make_base
        from activities.executor.docker_client import docker_client
        from activities.executor.image import DEFAULT_BASE, DOCKERFILE, ImageBuildError, build_image
    except ImportError:
        fail(_docker_missing())
    image = tag or cfg.executor.image
    base_image = base or DEFAULT_BASE
    try:
        if not _image_exists(docker_client(), base_image):
            console.print(f"The base image {base_image} is missing: making it first")
            how = make_base(base_image, lambda line: console.print(f"  {line}", markup=False, soft_wrap=True))
            console.print(f"Made {base_image} ({'from the registry' if how == 'registry' else 'with debootstrap'})")
        image_id = build_image(image, file or DOCKERFILE, base_image)
    except (ExecutorUnavailable, ImageBuildError, BaseImageError) as exc:
        fail(str(exc))
    console.print(f"Built [bold]{image}[/bold] ({image_id[:19]})")


@executor_app.command("check")
def check(as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON.")) -> None:
    """Run a container the way requests do and prove its isolation: network, files, processes, limits."""
    cfg = runtime.settings()
    try:
        from activities.executor.base import ExecutorUnavailable
        from activities.executor.isolation import check_isolation
    except ImportError:
        fail(_docker_missing())
    try:
        checks = runtime.run(check_isolation(cfg.executor))
    except ExecutorUnavailable as exc:
        fail(str(exc))
    failed = [c for c in checks if not c.ok]
    if as_json:
        print_json([c.as_dict() for c in checks])
    else:
        for c in checks:
            mark = "[red]FAIL[/red]" if not c.ok else ("[yellow]WARN[/yellow]" if c.warning else "[green]ok[/green]  ")
            console.print(f"{mark} {c.name}: [dim]{c.detail}[/dim]")
        console.print(
            f"[red]{len(failed)} of {len(checks)} checks failed[/red]"
            if failed
            else f"[green]all {len(checks)} checks passed[/green] (image {cfg.executor.image})"
        )
    if failed:
        raise typer.Exit(1)


@executor_app.command("sweep")
def sweep() -> None:
    """Remove the containers of requests that have ended (a worker does this when it starts)."""
    cfg = runtime.settings()
    from activities.executor.sweep import sweep_containers

    async def _go() -> list[str]:
        client = await runtime.client_for(cfg, start_server=False)
        return await sweep_containers(client, say=runtime.say)

    removed = runtime.run(_go())
    console.print(f"Removed {len(removed)} container(s)" if removed else "No stale containers")
