"""Capability routing: models listed in iter.yml with what they can do; each phase takes the first
that has what it needs, the rest are its fallbacks; ``iter models`` says which answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from temporalio.client import Client

from models.config import LLMSettings, ModelSpec, Settings
from tests import replies as r
from tests.cli import iter_cmd
from tests.fake_llm import FakeModel
from tests.pipeline import run_request


def test_each_role_gets_the_first_model_that_serves_it() -> None:
    llm = LLMSettings(
        model="big",
        models=[
            ModelSpec(name="free-text", json_schema=False),
            ModelSpec(name="any"),
            ModelSpec(name="judge", roles=["reviewer"], context=4096, base_url="http://other:8080/v1"),
        ],
    )
    assert llm.models_for("reviewer") == ["judge", "any", "big"]
    assert llm.models_for("coder") == ["any", "big"], "a model without JSON-schema output cannot answer a phase"
    judge = llm.settings_for("judge")
    assert (judge.base_url, judge.provider, judge.num_ctx) == ("http://other:8080/v1", "openai", 4096)
    assert llm.settings_for("big") is llm


@pytest.mark.usefixtures("worker")
async def test_a_missing_listed_model_falls_back_to_the_next(
    client: Client, settings: Settings, workspace: Path, fake: FakeModel
) -> None:
    settings.llm.models = [ModelSpec(name="not-pulled", roles=["coder"]), ModelSpec(name="coder", roles=["coder"])]
    fake.script("plan", r.plan(r.write("s1", "src/calc/mul.py", "def m():\n    return 1\n"), r.verify("s2")))
    fake.script("safety_review", r.safety_pass())
    fake.script("post_review", r.post_pass())

    state = await run_request(client, settings, workspace)

    assert state.outcome == "passed", state.error
    assert [c["model"] for c in fake.calls("plan")] == ["not-pulled", "coder"]
    assert state.usage[0].model == "coder"


def test_iter_models_lists_capabilities_and_what_answers(
    workspace: Path, cli_env: dict[str, str], fake: FakeModel
) -> None:
    fake.context_length = 0
    (workspace / "iter.yml").write_text(
        yaml.safe_dump(
            {
                "llm": {
                    "models": [
                        {"name": "coder", "roles": ["coder"], "context": 8192, "tokens_per_s": 40},
                        {"name": "ghost", "roles": ["reviewer"]},
                        {"name": "elsewhere", "base_url": "http://127.0.0.1:9/v1"},
                    ]
                }
            }
        )
    )
    done = iter_cmd(workspace, cli_env, "models", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["coder"]["answers"] and rows["coder"]["first_for"] == ["coder"]
    assert rows["coder"]["window"] == 8192 and rows["coder"]["tokens_per_s"] == 40
    assert not rows["ghost"]["answers"] and "does not have this model" in rows["ghost"]["problem"]
    assert not rows["elsewhere"]["answers"] and "no answer" in rows["elsewhere"]["problem"]
    assert rows["ghost"]["first_for"] == ["reviewer"]
    grouped = iter_cmd(workspace, cli_env, "model", "list", "--json")  # `iter models` is its alias
    assert grouped.returncode == 0, grouped.stderr
    assert json.loads(grouped.stdout) == json.loads(done.stdout)
