"""Who owns which setting: the worker (the machine that runs the activities) or the request.

The CLI freezes its settings into a workflow's input, so that a workflow replays the same. But
some settings describe the machine, not the work: where the model server is and which models it
has, where data lives, how steps are sandboxed. Those belong to the worker: an activity takes
them from the worker's own environment and ``iter.yml``, never from the frozen input, so a
worker in a container with ``ITER_LLM_BASE_URL=http://ollama:11434`` calls that server whatever
the laptop that started the request had. Everything else (bounds, step limits, iterations,
auto-commit, retries, the model's sampling) is the request's.

Role choices (which model is the coder, which the reviewer, the fallbacks) are the request's
when it made one, and the worker's when it left the built-in default: ``iter build --model X``
wins, and a request that chose nothing runs on the models the worker serves.
"""

from __future__ import annotations

from typing import Any

from models.config import Settings

WORKER_KEYS: tuple[str, ...] = (
    "llm.provider",
    "llm.base_url",
    "llm.request_timeout_s",
    "llm.idle_timeout_s",
    "llm.first_token_timeout_s",
    "executor.backend",
    "executor.image",
    "executor.network",
    "data_dir",
    "temporal",
)
"""The worker's own settings: model endpoints (keys are never settings: ``ITER_LLM_API_KEY`` is
read from the worker's environment), the data directory, the executor backend and image, the
payload store, and its own Temporal connection."""

ENDPOINT_KEYS: tuple[str, ...] = ("llm.provider", "llm.base_url")
"""The model server. The worker's when its own environment or iter.yml names one; a worker told
nothing about model servers (the CLI's background worker on a machine with none configured) takes
the request's, which is the server that CLI found or started (its embedded one)."""

ROLE_KEYS: tuple[str, ...] = ("llm.model", "llm.reviewer_model", "llm.fallback_models")
"""The request's choice of models; the worker's where the request left the default."""

_DEFAULTS = Settings()


def _get(settings: Settings, dotted: str) -> Any:
    value: Any = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        data = data[part]
    data[leaf] = value


def owner(dotted: str) -> str:
    """``worker`` or ``request``, for ``iter config`` and the docs."""
    return "worker" if any(dotted == k or dotted.startswith(k + ".") for k in WORKER_KEYS) else "request"


def names_model_server(sources: dict[str, str]) -> bool:
    """Whether a worker's own layers (``models.config.setting_sources``) name a model server."""
    return any(key in sources for key in ENDPOINT_KEYS)


def for_worker(request: Settings, worker: Settings, own_endpoint: bool = True) -> Settings:
    """The settings an activity works with: the request's, with the worker's own keys (the model
    server only when ``own_endpoint``: the worker's layers name one)."""
    data = request.model_dump()
    own = worker.model_dump()
    for key in WORKER_KEYS:
        if own_endpoint or key not in ENDPOINT_KEYS:
            _set(data, key, _get_dumped(own, key))
    for key in ROLE_KEYS:
        if _get(request, key) == _get(_DEFAULTS, key):
            _set(data, key, _get_dumped(own, key))
    return Settings.model_validate(data)


def _get_dumped(data: dict[str, Any], dotted: str) -> Any:
    value: Any = data
    for part in dotted.split("."):
        value = value[part]
    return value
