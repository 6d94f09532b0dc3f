"""Scripted model answers in the contracts' shapes, so tests read as the story they tell."""

from __future__ import annotations

from typing import Any

from tests.fake_llm import Reply

__all__ = ["Reply"]

POINT_NAMES = ["paths", "destructive", "secrets", "dependencies", "network", "privilege", "resources", "consistency"]


def varied(chars: int) -> str:
    """Long text that never repeats itself: a model's answer stuck repeating is cut off as such,
    so a test about size alone needs content that is only big."""
    return " ".join(f"w{i * 7919 % 100_003}" for i in range(chars // 6))[:chars]


def plan(*steps: dict[str, Any], summary: str = "implement the request") -> dict[str, Any]:
    return {"summary": summary, "steps": list(steps)}


def write(step_id: str, path: str, content: str, action: str = "create") -> dict[str, Any]:
    return {"id": step_id, "type": "file", "path": path, "action": action, "content": content}


def run(step_id: str, command: str, timeout_s: int | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"id": step_id, "type": "command", "command": command}
    if timeout_s:
        step["timeout_s"] = timeout_s
    return step


def verify(step_id: str, command: str = "python -m pytest -q") -> dict[str, Any]:
    return {"id": step_id, "type": "verify", "command": command}


def safety_pass() -> dict[str, Any]:
    checks = [{"point": n + 1, "name": name, "ok": True, "reason": "fine"} for n, name in enumerate(POINT_NAMES)]
    return {"verdict": "PASS", "checks": checks, "blocked_steps": []}


def safety_block(point: int, step_id: str, reason: str) -> dict[str, Any]:
    review = safety_pass()
    review["verdict"] = "BLOCK"
    review["checks"][point - 1] = {"point": point, "name": POINT_NAMES[point - 1], "ok": False, "reason": reason}
    review["blocked_steps"] = [step_id]
    return review


def post_pass(criterion: str = "tests pass") -> dict[str, Any]:
    return {
        "verdict": "PASS",
        "criteria": [{"criterion": criterion, "met": True, "evidence": "pytest passed"}],
        "fix_steps": [],
        "info_requests": [],
    }


def post_fail(*fix_steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "verdict": "FAIL",
        "criteria": [{"criterion": "tests pass", "met": False, "evidence": "pytest failed"}],
        "fix_steps": list(fix_steps),
        "info_requests": [],
    }


def post_info(*requests: tuple[str, str]) -> dict[str, Any]:
    return {
        "verdict": "INFO_NEEDED",
        "criteria": [],
        "fix_steps": [],
        "info_requests": [{"kind": k, "target": t} for k, t in requests],
    }


MULTIPLY = "\n\ndef multiply(a: float, b: float) -> float:\n    return a * b\n"
MULTIPLY_TEST = "from calc.ops import multiply\n\n\ndef test_multiply() -> None:\n    assert multiply(3, 4) == 12\n"
