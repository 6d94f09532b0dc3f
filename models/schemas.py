"""The answer schemas by name: the one place that maps a contract to the JSON schema sent to a
model and to the parser of its answer."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from models.plan import Plan
from models.review import PostReview, SafetyReview
from models.session import SessionPlan

SCHEMAS: dict[str, type[BaseModel]] = {
    "plan": Plan,
    "safety_review": SafetyReview,
    "post_review": PostReview,
    "session_plan": SessionPlan,
}


FREE_TEXT = "file"  # a file's code, written as a fenced block (models/writing.py): no schema constrains it


def json_schema(name: str) -> dict[str, Any] | None:
    """The schema that constrains the answer, or None for an answer in free text."""
    return None if name == FREE_TEXT else SCHEMAS[name].model_json_schema()


def parse_answer(name: str, text: str) -> tuple[BaseModel | None, str]:
    """The parsed answer, or None and the errors in words a model can act on."""
    try:
        return SCHEMAS[name].model_validate_json(text), ""
    except ValidationError as exc:
        if not text.strip():
            return None, "the answer was empty"
        lines = []
        for err in exc.errors()[:10]:
            where = ".".join(str(p) for p in err["loc"]) or "(root)"
            lines.append(f"- {where}: {err['msg']}")
        return None, "\n".join(lines)
    except json.JSONDecodeError as exc:  # pragma: no cover - pydantic wraps this, kept for safety
        return None, f"- not JSON: {exc}"
