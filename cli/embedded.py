"""The embedded model server: when no model server is configured and none answers at the default
address, iter starts ``llama-server`` with a small Qwen coder model from PyPI (activities/
local_model.py) on 127.0.0.1, in the background, its files under the data directory, and says so.
A configured server always wins: any llm.base_url or llm.provider set in a flag, ITER_* or a file.

The background server outlives the command that started it (the worker needs it after the CLI
has gone), like the embedded Temporal; ``iter model stop`` ends it, ``iter model serve`` runs
one in the foreground instead."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.config import Settings

STATE_FILE = "llama-server.json"
LOG_FILE = "llama-server.log"
PROBE_TIMEOUT_S = 1.5


def _state_path(cfg: Settings) -> Path:
    from models.config import data_dir

    return data_dir(cfg) / STATE_FILE


def configured(cfg: Settings) -> bool:
    """Whether the user chose a model server (in any layer): then iter never starts its own."""
    from models.config import setting_sources

    sources = setting_sources()
    return bool(cfg.llm.base_url) or "llm.provider" in sources or "llm.base_url" in sources


def answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=PROBE_TIMEOUT_S).status_code < 500
    except httpx.HTTPError:
        return False


def running(cfg: Settings) -> dict[str, object] | None:
    """The background server this data directory started, if it still answers."""
    try:
        state = json.loads(_state_path(cfg).read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None
    return state if answers(f"http://127.0.0.1:{state['port']}/health") else None


def start_background(cfg: Settings, key: str) -> dict[str, object]:
    """Start llama-server in its own session (a Ctrl-C of the CLI does not reach it); returns
    once it answers."""
    from activities.local_model import START_TIMEOUT_S, LocalModelError, LocalServer, ensure_model, model_named
    from models.config import data_dir

    model = model_named(key)
    folder = data_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    server = LocalServer(model_path=ensure_model(key, folder), alias=model.alias, log_path=folder / LOG_FILE)
    proc = server.launch(own_session=True)
    state: dict[str, object] = {"pid": proc.pid, "port": server.port, "model": model.alias}
    _state_path(cfg).write_text(json.dumps(state))
    if server.answers_within(START_TIMEOUT_S):
        if server.proc is not proc:  # started again without the kernels this CPU cannot run
            state["pid"] = server.proc.pid if server.proc else proc.pid
            _state_path(cfg).write_text(json.dumps(state))
        return state
    (server.proc or proc).kill()
    raise LocalModelError(f"llama-server did not answer within {START_TIMEOUT_S:.0f} s; see {folder / LOG_FILE}")


def stop_background(cfg: Settings) -> int | None:
    """End the background server; its pid, or None when none ran."""
    state = running(cfg)
    _state_path(cfg).unlink(missing_ok=True)
    if state is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(str(state["pid"])), signal.SIGTERM)
    return int(str(state["pid"]))


def using(cfg: Settings, state: dict[str, object]) -> Settings:
    """Settings that talk to the embedded server."""
    llm = cfg.llm.model_copy(
        update={
            "provider": "openai",
            "base_url": f"http://127.0.0.1:{state['port']}/v1",
            "model": str(state["model"]),
            "reviewer_model": "",
            "fallback_models": [],
        }
    )
    return cfg.model_copy(update={"llm": llm})


def resolve(cfg: Settings, say: Callable[[str], None]) -> Settings:
    """The settings a new request or session runs with: the configured server, the default one if
    it answers, else the embedded one (started now if needed, and said so)."""
    if configured(cfg) or os.environ.get("ITER_EMBEDDED_MODEL", "") in ("0", "no", "false"):
        return cfg
    default = cfg.llm.resolved_base_url()
    if answers(default + ("/api/tags" if cfg.llm.provider == "ollama" else "/models")):
        return cfg
    state = running(cfg)
    if state is not None:
        say(f"No model server is configured: using the embedded llama-server ({state['model']}), port {state['port']}")
        return using(cfg, state)
    from activities.local_model import DEFAULT_MODEL, LocalModelError, installed_models, server_binary

    try:
        server_binary()
        if not any(m.key == DEFAULT_MODEL for m in installed_models()):
            raise LocalModelError("the model's packages are not installed")
    except LocalModelError as exc:
        say(
            f"No model server answers at {default} and none is configured; iter's embedded one is not "
            f"installed ({exc}): `pip install 'iter[embedded]'` adds it, or start Ollama, or set ITER_LLM_BASE_URL"
        )
        return cfg
    from models.config import data_dir

    say(
        f"No model server answers at {default} and none is configured: starting the embedded one, "
        f"llama-server with {DEFAULT_MODEL} on 127.0.0.1 (files under {data_dir(cfg)}; the first start assembles "
        "the 491 MB model file). Set ITER_LLM_BASE_URL to use your own; `iter model stop` ends it"
    )
    state = start_background(cfg, DEFAULT_MODEL)
    say(f"Embedded model server up on http://127.0.0.1:{state['port']}/v1 ({state['model']})")
    return using(cfg, state)
