"""The plan contract: the schema the model is held to, and the parser of its answer, agree."""

from __future__ import annotations

import json

from models.schemas import json_schema, parse_answer


def test_the_schema_makes_file_content_a_required_string() -> None:
    file_step = json_schema("plan")["$defs"]["FileStep"]
    assert "content" in file_step["required"]
    assert file_step["properties"]["content"]["type"] == "string"


def test_parser_rejects_what_the_contract_forbids_and_says_why() -> None:
    _, errors = parse_answer(
        "plan", '{"summary": "x", "steps": [{"id": "a", "type": "file", "path": "a.py", "action": "create"}]}'
    )
    assert "needs content" in errors
    _, errors = parse_answer("plan", '{"summary": "x", "steps": []}')
    assert "steps" in errors
    _, errors = parse_answer("plan", '{"summary": "x", "steps": [{"id": "a", "type": "shell", "command": "ls"}]}')
    assert "does not match any of the expected tags" in errors or "type" in errors
    delete = {"id": "d", "type": "file", "path": "old.py", "action": "delete", "content": ""}
    check = {"id": "v", "type": "verify", "command": "true"}
    plan, errors = parse_answer("plan", json.dumps({"summary": "x", "steps": [delete, check]}))
    assert plan is not None and errors == ""
