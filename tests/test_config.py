"""Settings come in layers: flags > ITER_* environment > ./iter.yml > ~/.config/iter/iter.yml >
defaults; a key in a file goes to the environment, never into Settings (and so never into history)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from models.config import ConfigError, load_settings
from tests.cli import iter_cmd


@pytest.fixture
def layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for var in [v for v in os.environ if v.startswith("ITER_")]:
        monkeypatch.delenv(var)
    (tmp_path / "config/iter").mkdir(parents=True)
    (tmp_path / "config/iter/iter.yml").write_text(
        yaml.safe_dump({"llm": {"model": "global-model", "reviewer_model": "global-reviewer", "num_ctx": 4096}})
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "iter.yml").write_text(
        yaml.safe_dump({"llm": {"model": "project-model"}, "executor": {"backend": "local"}})
    )
    return project


def test_each_layer_overrides_the_one_below(layers: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITER_REVIEWER_MODEL", "env-reviewer")

    cfg = load_settings(cwd=layers, env=dict(os.environ), overrides={"executor.backend": "docker"})

    assert cfg.llm.num_ctx == 4096  # global file
    assert cfg.llm.model == "project-model"  # project file over global
    assert cfg.llm.reviewer_model == "env-reviewer"  # environment over files
    assert cfg.executor.backend == "docker"  # flag over everything
    assert cfg.bounds.max_fix_depth == 5  # default


def test_a_bad_value_names_the_setting(layers: Path) -> None:
    with pytest.raises(ConfigError, match=r"setting llm.provider: .*got 'llamafile'"):
        load_settings(cwd=layers, env={"ITER_LLM_PROVIDER": "llamafile"})
    (layers / "iter.yml").write_text("llm: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(cwd=layers, env={})


def test_an_api_key_in_a_file_never_enters_settings(layers: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (layers / "iter.yml").write_text(yaml.safe_dump({"llm": {"model": "m", "api_key": "sk-file-key-1234567890abcd"}}))
    monkeypatch.setenv("ITER_LLM_API_KEY", "placeholder")  # so that teardown restores the variable's absence
    monkeypatch.delenv("ITER_LLM_API_KEY")

    cfg = load_settings(cwd=layers, env={})

    assert "sk-file-key" not in cfg.model_dump_json()
    assert os.environ["ITER_LLM_API_KEY"] == "sk-file-key-1234567890abcd"


def test_iter_config_shows_the_merged_result(layers: Path, cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in cli_env.items() if k not in ("ITER_MODEL", "ITER_EXECUTOR")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")

    shown = json.loads(iter_cmd(layers, env, "config", "--json").stdout)

    assert shown["llm"]["model"] == "project-model" and shown["llm"]["num_ctx"] == 4096
    assert shown["executor"]["backend"] == "local"
    assert shown["sources"]["llm.model"] == "./iter.yml"
    assert shown["sources"]["temporal.address"] == "env ITER_TEMPORAL_ADDRESS"
    assert shown["sources"]["llm.temperature"] == "default"
    assert "retry.heartbeat_timeout_s" not in shown["sources"]  # nothing reads it


def test_iter_config_names_each_source_and_real_defaults(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "c"), "COLUMNS": "200"}
    env["ITER_LLM_BASE_URL"] = "http://127.0.0.1:9/v1"
    done = iter_cmd(tmp_path, env, "config")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line and not line.startswith("#")}
    assert "env ITER_LLM_BASE_URL" in lines["llm.base_url"]
    assert "openai" in lines["llm.provider"] and "inferred from llm.base_url" in lines["llm.provider"]
    env.pop("ITER_LLM_BASE_URL")
    done = iter_cmd(tmp_path, env, "config")
    base = next(line for line in done.stdout.splitlines() if line.startswith("llm.base_url"))
    assert "http://localhost:11434" in base and "default" in base, base


def test_a_provider_that_contradicts_its_url_is_named(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "c")}
    env.update({"ITER_LLM_PROVIDER": "ollama", "ITER_LLM_BASE_URL": "http://127.0.0.1:9/v1"})
    done = iter_cmd(tmp_path, env, "config")
    assert done.returncode != 0
    assert "ends with /v1" in done.stderr and "ITER_LLM_PROVIDER=openai" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
