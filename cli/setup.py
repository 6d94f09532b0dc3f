"""``iter setup``, ``iter config``, ``iter doctor``, ``iter version``."""

from __future__ import annotations

import shutil
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version

import httpx
import typer
import yaml

from cli import runtime
from cli.output import console, fail, ok, print_json
from models.config import ENV_KEYS, Settings, data_dir, global_config_path, project_config_path
from temporal import devserver

SETUP_KEYS = {"llm": ["provider", "base_url", "model", "reviewer_model"], "executor": ["backend"]}


def version() -> None:
    """Show the version of iter and its engine."""
    try:
        ours = dist_version("iter")
    except PackageNotFoundError:
        ours = "unknown"
    console.print(f"iter {ours} (temporalio {dist_version('temporalio')})")


def config(as_json: bool = typer.Option(False, "--json")) -> None:
    """Show the resolved configuration: flags > ITER_* > ./iter.yml > ~/.config/iter/iter.yml > defaults."""
    cfg = runtime.settings()
    data = cfg.model_dump(mode="json")
    if as_json:
        print_json(data)
        return
    console.print(f"# files: {global_config_path()} ; {project_config_path()}")
    console.print(f"# environment: {', '.join(sorted(ENV_KEYS))}, ITER_LLM_API_KEY")
    console.print(yaml.safe_dump(data, sort_keys=False).rstrip())


def setup(
    project: bool = typer.Option(False, "--project", "-p", help="Write ./iter.yml instead of the global file."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing file."),
    provider: str = typer.Option("ollama", "--provider", help="ollama or openai"),
    base_url: str = typer.Option("", "--base-url"),
    model: str = typer.Option("qwen2.5-coder:7b", "--model"),
    reviewer_model: str = typer.Option("", "--reviewer-model"),
    executor: str = typer.Option("docker", "--executor", help="docker or local"),
) -> None:
    """Write a config file with the model and executor to use."""
    path = project_config_path() if project else global_config_path()
    if path.exists() and not force:
        fail(f"{path} exists; use --force to overwrite it")
    if provider not in ("ollama", "openai") or executor not in ("docker", "local"):
        fail("provider must be ollama or openai, executor docker or local")
    data = {
        "llm": {"provider": provider, "base_url": base_url, "model": model, "reviewer_model": reviewer_model},
        "executor": {"backend": executor},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    ok(f"Wrote {path}")


def doctor() -> None:
    """Check what iter needs: Temporal, the model server, the executor."""
    cfg = runtime.settings()
    problems = 0

    def check(good: bool, label: str, fix: str) -> None:
        nonlocal problems
        problems += not good
        console.print(("[green]✓[/green] " if good else "[red]✗[/red] ") + label + ("" if good else f" — {fix}"))

    try:
        binary = devserver.temporal_binary()
        check(True, f"temporal CLI: {binary}", "")
    except devserver.DevServerError as exc:
        check(False, "temporal CLI", str(exc))
    target = cfg.temporal.address or f"{devserver.DEV_HOST}:{devserver.DEV_PORT}"
    host, _, port = target.rpartition(":")
    up = devserver.port_open(host or "127.0.0.1", int(port or 7233))
    check(
        up or not cfg.temporal.address,
        f"Temporal at {target}" + ("" if up else " (not running; iter starts it on demand)"),
        "check ITER_TEMPORAL_ADDRESS",
    )
    base = cfg.llm.resolved_base_url()
    probe = base + ("/api/tags" if cfg.llm.provider == "ollama" else "/models")
    try:
        httpx.get(probe, timeout=3).raise_for_status()
        check(True, f"model server {cfg.llm.provider} at {base}", "")
    except httpx.HTTPError as exc:
        check(
            False,
            f"model server {cfg.llm.provider} at {base}: {exc.__class__.__name__}",
            "start it, or set ITER_LLM_PROVIDER / ITER_LLM_BASE_URL",
        )
    if cfg.executor.backend == "docker":
        check(*_docker_ready(cfg))
    check(True, f"data directory {data_dir(cfg)}", "")
    check(shutil.which("git") is not None, "git", "install git")
    if problems:
        raise typer.Exit(1)


def _docker_ready(cfg: Settings) -> tuple[bool, str, str]:
    """The same preflight `iter orchestrate` runs: a daemon that answers and the executor image."""
    try:
        from activities.executor.base import ExecutorUnavailable
        from activities.executor.docker import preflight
    except ImportError:
        return False, "Docker executor", "install iter[docker], or choose --executor local explicitly"
    try:
        preflight(cfg.executor)
    except ExecutorUnavailable as exc:
        return False, "Docker executor", str(exc)
    return True, f"Docker executor (image {cfg.executor.image})", ""
