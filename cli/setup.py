"""``iter setup``, ``iter config``, ``iter doctor``, ``iter version``."""

from __future__ import annotations

import json
import shutil
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import TYPE_CHECKING, Any

import typer

from cli import runtime
from cli.output import console, fail, ok, print_json

if TYPE_CHECKING:
    from models.config import Settings

SETUP_KEYS = {"llm": ["provider", "base_url", "model", "reviewer_model"], "executor": ["backend"]}


def version() -> None:
    """Show the version of iter and its engine."""
    try:
        ours = dist_version("iter")
    except PackageNotFoundError:
        ours = "unknown"
    console.print(f"iter {ours} (temporalio {dist_version('temporalio')})")


def config(as_json: bool = typer.Option(False, "--json", help="Print JSON for programs.")) -> None:
    """Show each setting, its value and where it comes from: a flag, ITER_* in the environment,
    ./iter.yml, the global file (~/.config/iter/iter.yml) or iter's default."""
    from models.config import global_config_path, setting_sources

    cfg = runtime.settings()
    rows = config_rows(cfg, setting_sources())
    if as_json:
        print_json({**cfg.model_dump(mode="json"), "sources": {k: src for k, _, src in rows}})
        return
    width = max(len(k) for k, _, _ in rows)
    shown = [(k, json.dumps(v) if not isinstance(v, str) else (v or "''"), src) for k, v, src in rows]
    value_width = min(max(len(v) for _, v, _ in shown), 40)
    for key, value, source in shown:
        console.print(f"{key:<{width}}  {value:<{value_width}}  [dim]{source}[/dim]", soft_wrap=True)
    console.print(f"[dim]# files: {global_config_path()} ; ./iter.yml  (flags > ITER_* > ./iter.yml > global)[/dim]")


def config_rows(cfg: Settings, sources: dict[str, str]) -> list[tuple[str, Any, str]]:
    """(setting, value, source) for every setting; values a default leaves empty show what is used."""
    from models.config import data_dir

    rows: list[tuple[str, Any, str]] = []

    def walk(data: dict[str, Any], prefix: str) -> None:
        for key, value in data.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                dotted = f"{prefix}{key}"
                rows.append((dotted, value, sources.get(dotted, "default")))

    walk(cfg.model_dump(mode="json"), "")
    resolved = {
        "llm.base_url": (cfg.llm.resolved_base_url(), f"the {cfg.llm.provider} default"),
        "llm.reviewer_model": (cfg.llm.reviewer_model or cfg.llm.model, "the coder model"),
        "data_dir": (str(data_dir(cfg)), "XDG_DATA_HOME/iter"),
        "temporal.address": (cfg.temporal.address or "embedded dev server on 127.0.0.1:7233", "started on demand"),
    }
    for i, (key, value, source) in enumerate(rows):
        if key in resolved and source == "default" and not value:
            shown, why = resolved[key]
            rows[i] = (key, shown, f"default ({why})")
        elif key == "llm.provider" and source == "default" and cfg.llm.base_url:
            rows[i] = (key, value, "inferred from llm.base_url")
    return rows


def setup(
    project: bool = typer.Option(False, "--project", "-p", help="Write ./iter.yml instead of the global file."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing file."),
    provider: str = typer.Option("ollama", "--provider", help="ollama or openai"),
    base_url: str = typer.Option("", "--base-url", help="The model server's URL (default: the provider's usual one)."),
    model: str = typer.Option("qwen2.5-coder:7b", "--model", help="The coder model."),
    reviewer_model: str = typer.Option("", "--reviewer-model", help="The reviewer model (default: the coder model)."),
    executor: str = typer.Option("docker", "--executor", help="docker or local"),
) -> None:
    """Write a config file with the model and executor to use."""
    import yaml

    from models.config import global_config_path, project_config_path

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
    from models.config import data_dir
    from temporal import devserver

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
    good, label, fix = model_server_check(cfg)
    check(good, label, fix)
    if cfg.executor.backend == "docker":
        check(*_docker_ready(cfg))
    check(True, f"data directory {data_dir(cfg)}", "")
    check(shutil.which("git") is not None, "git", "install git")
    if problems:
        raise typer.Exit(1)


def model_server_check(cfg: Settings) -> tuple[bool, str, str]:
    """Whether the configured model server answers, as a sentence: (good, what, what to do)."""
    import httpx

    base = cfg.llm.resolved_base_url()
    provider = cfg.llm.provider
    probe = base + ("/api/tags" if provider == "ollama" else "/models")
    label = f"model server ({provider}) at {base}"
    try:
        resp = httpx.get(probe, timeout=3)
    except httpx.TimeoutException:
        return False, f"{label} did not answer within 3 s", "check that it is up and not overloaded"
    except httpx.HTTPError:
        return (
            False,
            f"nothing answers at {base}",
            "start the model server, run `iter model serve` for the embedded one, or set ITER_LLM_BASE_URL",
        )
    if resp.status_code == 404:
        other = "an OpenAI-compatible server (base URL ending in /v1)" if provider == "ollama" else "Ollama"
        return (
            False,
            f"{base} answers, but not as {provider} ({probe} is not found)",
            f"if it is {other}, set ITER_LLM_PROVIDER and ITER_LLM_BASE_URL to match",
        )
    if resp.status_code in (401, 403):
        return False, f"{label} refuses iter (HTTP {resp.status_code})", "set ITER_LLM_API_KEY to a key it accepts"
    if resp.status_code >= 400:
        return False, f"{label} answered HTTP {resp.status_code}", "see the server's log"
    return True, f"{label} answers", ""


def _docker_ready(cfg: Settings) -> tuple[bool, str, str]:
    """The same preflight `iter orchestrate` runs: a daemon that answers and the executor image."""
    try:
        from activities.executor.base import ExecutorUnavailable
        from activities.executor.docker_client import preflight
    except ImportError:
        return False, "Docker executor", "reinstall iter (pip install -e .), or choose --executor local explicitly"
    try:
        preflight(cfg.executor)
    except ExecutorUnavailable as exc:
        return False, "Docker executor", str(exc)
    return True, f"Docker executor (image {cfg.executor.image})", ""
