"""Settings, and the layers they come from: flags > ITER_* environment > ./iter.yml >
~/.config/iter/iter.yml > defaults.

``Settings`` travels inside workflow inputs, so it holds no secret: the LLM and Temporal API keys
are read from the environment by whoever needs them (``llm_api_key()``), never stored here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

Provider = Literal["ollama", "openai"]
Backend = Literal["local", "docker"]
ApplyMode = Literal["apply", "branch", "commit"]

DEFAULT_TASK_QUEUE = "iter"
DEFAULT_EXECUTOR_IMAGE = "iter-executor:latest"


ModelRole = Literal["coder", "reviewer"]


class ModelSpec(BaseModel):
    """A model iter may use and what it can do, listed under ``llm.models`` in iter.yml. Each
    phase takes the first listed model that has what the phase needs (its role, JSON-schema
    output); the others are its fallbacks, in order."""

    name: str = Field(min_length=1, description="The model name its server answers to")
    provider: Provider | None = Field(default=None, description="Its server's API; default: llm.provider")
    base_url: str = Field(default="", description="Its server; default: llm.base_url")
    json_schema: bool = Field(default=True, description="Can constrain its answer to a JSON schema")
    context: int = Field(default=0, ge=0, description="Context window in tokens; 0: llm.num_ctx")
    tokens_per_s: float = Field(default=0.0, ge=0, description="Expected generation speed; 0: unknown")
    roles: list[ModelRole] = Field(default_factory=list, description="Roles it may take; empty: any")

    def serves(self, role: str) -> bool:
        return self.json_schema and (not self.roles or role in self.roles)


class LLMSettings(BaseModel):
    provider: Provider = "ollama"
    base_url: str = ""
    model: str = "qwen2.5-coder:7b"
    reviewer_model: str = ""
    fallback_models: list[str] = Field(default_factory=list)
    models: list[ModelSpec] = Field(
        default_factory=list, description="Models with their capabilities, in order of preference"
    )
    num_ctx: int = 16384
    temperature: float = 0.2
    max_tokens: int = 8192
    request_timeout_s: float = Field(default=600.0, description="HTTP read timeout of one read of the stream")
    idle_timeout_s: float = Field(
        default=120.0, gt=0, description="Once tokens arrive: this long without one and the stream has stalled"
    )
    first_token_timeout_s: float = Field(
        default=900.0, gt=0, description="How long the model may read the prompt before its first token"
    )

    @model_validator(mode="before")
    @classmethod
    def _provider_from_url(cls, data: Any) -> Any:
        """No provider given: the URL says which (``/v1`` is how OpenAI-compatible servers are
        addressed). A provider that contradicts its URL is named now, not as a 404 later."""
        if not isinstance(data, dict) or not data.get("base_url"):
            return data
        path = str(data["base_url"]).rstrip("/")
        openai_like = path.endswith("/v1")
        if not data.get("provider"):
            return {**data, "provider": "openai" if openai_like else "ollama"}
        if data["provider"] == "ollama" and openai_like:
            raise ValueError(
                f"llm.provider is ollama but llm.base_url {path} ends with /v1, the address of an "
                "OpenAI-compatible server: set ITER_LLM_PROVIDER=openai (or llm.provider: openai), or drop /v1"
            )
        return data

    def resolved_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        return "http://localhost:11434" if self.provider == "ollama" else "http://localhost:8080/v1"

    def models_for(self, role: str) -> list[str]:
        """The models to try for a role, in order: the listed models that serve it (those naming
        the role before those open to any), then the role's own model, then the fallbacks."""
        routed = sorted((m for m in self.models if m.serves(role)), key=lambda m: role not in m.roles)
        first = self.reviewer_model if role == "reviewer" and self.reviewer_model else self.model
        return list(dict.fromkeys([*(m.name for m in routed), first, *self.fallback_models]))

    def spec(self, model: str) -> ModelSpec | None:
        return next((m for m in self.models if m.name == model), None)

    def settings_for(self, model: str) -> LLMSettings:
        """These settings as one model's call sees them: its own server and context, if listed."""
        spec = self.spec(model)
        if spec is None:
            return self
        update: dict[str, Any] = {"models": []}
        if spec.base_url:
            update["base_url"] = spec.base_url
            # As for llm.base_url: no provider given, the URL says which.
            update["provider"] = spec.provider or ("openai" if spec.base_url.rstrip("/").endswith("/v1") else "ollama")
        elif spec.provider:
            update["provider"] = spec.provider
        if spec.context:
            update["num_ctx"] = spec.context
        return self.model_copy(update=update)


class ExecutorSettings(BaseModel):
    backend: Backend = "docker"
    image: str = DEFAULT_EXECUTOR_IMAGE
    step_timeout_s: int = 300
    output_cap_bytes: int = 64_000
    memory_mb: int = 2048
    pids_limit: int = 256
    cpus: float = 1.0
    # The Docker network a step approved for network access joins (its own container; every other
    # step has none). A network's name only: ``container:<id>`` would share another container's.
    network: str = Field(default="bridge", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class WorktreeSettings(BaseModel):
    """Where steps run and how a passed request's change reaches the user's checkout."""

    mode: ApplyMode = "apply"
    """apply: the files land uncommitted in the checkout; commit: and are committed on its branch;
    branch: they stay on ``iter/<request>`` for ``iter diff`` / ``iter apply`` / ``iter discard``."""
    session_branch: Literal["own", "user"] = "own"
    """own: a session works on ``iter/<session>`` and lands at its end like a request; user: in the
    checkout itself, committing on the user's branch as it goes."""


class Bounds(BaseModel):
    """Every loop in the pipeline is bounded; each bound is a setting."""

    max_parse_repairs: int = Field(default=3, ge=0)
    max_block_replans: int = Field(default=3, ge=0)
    max_fix_depth: int = Field(default=5, ge=0, le=5)
    max_info_rounds: int = Field(default=3, ge=0)
    max_file_bytes: int = Field(default=10_240, ge=256)
    max_answer_bytes: int = Field(default=200_000, ge=1_000, le=1_000_000)
    """A model answer longer than this is cut off there (and is invalid): it never reaches history whole."""


class RetrySettings(BaseModel):
    """How patiently a model call waits for its server (unreachable, 5xx, 429, broken stream)."""

    initial_interval_s: float = 1.0
    max_interval_s: float = 30.0


class PayloadSettings(BaseModel):
    """Where values too large for Temporal go (the claim check in temporal/payloads.py)."""

    store: Literal["local", "s3"] = "local"
    """local: a directory under the data dir, for one machine; s3: an S3-compatible bucket, for clusters."""
    threshold_bytes: int = Field(default=128_000, ge=1_000, le=1_500_000)
    """A payload above this size is stored and travels by reference."""
    s3_endpoint: str = ""
    """e.g. https://s3.eu-west-1.amazonaws.com or http://minio:9000 (credentials: AWS_* variables)."""
    s3_bucket: str = ""
    s3_prefix: str = "iter-payloads/"
    s3_region: str = "us-east-1"


class TemporalSettings(BaseModel):
    address: str = ""
    namespace: str = "default"
    tls: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    task_queue: str = DEFAULT_TASK_QUEUE
    ui_port: int = 8233


class Settings(BaseModel):
    llm: LLMSettings = Field(default_factory=LLMSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    bounds: Bounds = Field(default_factory=Bounds)
    worktree: WorktreeSettings = Field(default_factory=WorktreeSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    temporal: TemporalSettings = Field(default_factory=TemporalSettings)
    payloads: PayloadSettings = Field(default_factory=PayloadSettings)
    data_dir: str = ""
    auto_commit: bool = True
    iterations: int = 0
    headless: bool = False
    template: str = ""


# ITER_* variables and the setting each one sets (dotted path into Settings).
ENV_KEYS: dict[str, str] = {
    "ITER_LLM_PROVIDER": "llm.provider",
    "ITER_LLM_BASE_URL": "llm.base_url",
    "ITER_MODEL": "llm.model",
    "ITER_REVIEWER_MODEL": "llm.reviewer_model",
    "ITER_NUM_CTX": "llm.num_ctx",
    "ITER_LLM_IDLE_TIMEOUT": "llm.idle_timeout_s",
    "ITER_LLM_FIRST_TOKEN_TIMEOUT": "llm.first_token_timeout_s",
    "ITER_EXECUTOR": "executor.backend",
    "ITER_EXECUTOR_IMAGE": "executor.image",
    "ITER_EXECUTOR_NETWORK": "executor.network",
    "ITER_STEP_TIMEOUT": "executor.step_timeout_s",
    "ITER_TEMPORAL_ADDRESS": "temporal.address",
    "ITER_TEMPORAL_NAMESPACE": "temporal.namespace",
    "ITER_TEMPORAL_TLS": "temporal.tls",
    "ITER_TEMPORAL_TLS_CERT": "temporal.tls_cert",
    "ITER_TEMPORAL_TLS_KEY": "temporal.tls_key",
    "ITER_TASK_QUEUE": "temporal.task_queue",
    "ITER_DATA_DIR": "data_dir",
    "ITER_APPLY_MODE": "worktree.mode",
    "ITER_SESSION_BRANCH": "worktree.session_branch",
    "ITER_AUTO_COMMIT": "auto_commit",
    "ITER_ITERATIONS": "iterations",
    "ITER_HEADLESS": "headless",
    "ITER_TEMPLATE": "template",
    "ITER_RETRY_INITIAL_INTERVAL": "retry.initial_interval_s",
    "ITER_RETRY_MAX_INTERVAL": "retry.max_interval_s",
    "ITER_PAYLOAD_STORE": "payloads.store",
    "ITER_PAYLOAD_THRESHOLD": "payloads.threshold_bytes",
    "ITER_PAYLOAD_S3_ENDPOINT": "payloads.s3_endpoint",
    "ITER_PAYLOAD_S3_BUCKET": "payloads.s3_bucket",
    "ITER_PAYLOAD_S3_PREFIX": "payloads.s3_prefix",
    "ITER_PAYLOAD_S3_REGION": "payloads.s3_region",
}
SECRET_ENV_KEYS = ("ITER_LLM_API_KEY", "ITER_TEMPORAL_API_KEY")


class ConfigError(ValueError):
    """A config file or variable that cannot be used; the message says which and why."""


def global_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "iter" / "iter.yml"


def project_config_path(cwd: Path | None = None) -> Path:
    return (cwd or Path.cwd()) / "iter.yml"


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        target = target.setdefault(key, {})
    target[leaf] = value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__}); fix or remove it") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    for secret in ("api_key", "llm_api_key"):
        if secret in data.get("llm", {}) or secret in data:
            # Keys in files are allowed, but they go to the environment, never into Settings.
            os.environ.setdefault("ITER_LLM_API_KEY", str(data.get("llm", {}).pop(secret, data.pop(secret, ""))))
    return data


def env_layer(env: dict[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for var, dotted in ENV_KEYS.items():
        if var in env and env[var] != "":
            _set_dotted(layer, dotted, env[var])
    return layer


def load_settings(
    cwd: Path | None = None, env: dict[str, str] | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Merge the layers; ``overrides`` are the flags, as dotted keys."""
    env = dict(os.environ) if env is None else env
    merged: dict[str, Any] = {}
    for layer in (_read_yaml(global_config_path()), _read_yaml(project_config_path(cwd)), env_layer(env)):
        merged = _merge(merged, layer)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(merged, dotted, value)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "value_error":  # our own validators say what is wrong and what to do
            raise ConfigError(str(err["ctx"]["error"])) from exc
        raise ConfigError(f"setting {where}: {err['msg']} (got {err.get('input')!r})") from exc


def _flatten(layer: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in layer.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def setting_sources(
    cwd: Path | None = None, env: dict[str, str] | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, str]:
    """Where each setting that is not a default comes from (dotted key -> layer), the same layers
    in the same order as ``load_settings``."""
    env = dict(os.environ) if env is None else env
    by_key = {dotted: var for var, dotted in ENV_KEYS.items()}
    sources: dict[str, str] = {}
    for key in _flatten(_read_yaml(global_config_path())):
        sources[key] = str(global_config_path())
    for key in _flatten(_read_yaml(project_config_path(cwd))):
        sources[key] = "./iter.yml"
    for key in _flatten(env_layer(env)):
        sources[key] = f"env {by_key[key]}"
    for key, value in (overrides or {}).items():
        if value is not None:
            sources[key] = "flag"
    return sources


def llm_api_key() -> str:
    return os.environ.get("ITER_LLM_API_KEY", "")


def data_dir(settings: Settings) -> Path:
    if settings.data_dir:
        return Path(settings.data_dir).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "iter"
