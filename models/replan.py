"""Asking again differently. A small model given the same conversation at a low temperature gives
the same answer back: three re-plans of one blocked plan were three identical calls. So an answer
identical to an earlier one is never followed by the same call: the next one puts the problem
first, in a short and direct instruction without the conversation that led there, and samples
hotter each time. Pure: the workflow keeps the answers it has seen and asks this what to send."""

from __future__ import annotations

import json

from models.plan import Plan, VerifyStep

DIRECT_ASK = (
    "Answer with one JSON plan: a file step for each file to change (content left empty: you write "
    "each file next), then a verify step that runs the tests. Do not repeat the rejected answer."
)
TEMPERATURE_STEP = 0.35
MAX_TEMPERATURE = 1.0


def answer_key(text: str) -> str:
    """Equal for answers that differ only in whitespace or key order."""
    try:
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    except (json.JSONDecodeError, ValueError):
        return " ".join(text.split())


def changed_temperature(base: float, repeats: int) -> float:
    """Hotter with each repeat, so no two calls after a repeat are the same call."""
    return round(min(MAX_TEMPERATURE, base + TEMPERATURE_STEP * repeats), 2)


def direct_prompt(request_prompt: str, problem: str, ask: str = DIRECT_ASK) -> str:
    """The problem first, then what to do, then the original request with its files."""
    rejected = "Your previous answer was rejected, and you sent it again unchanged:"
    return f"{rejected}\n{problem}\n\n{ask}\n\n{request_prompt}"


def with_verify(plan: Plan, command: str) -> tuple[Plan, str]:
    """The plan, with the project's test command as its last step when it has no verify step
    (the gate would block it for that alone); and the command added, or ""."""
    if not command or any(isinstance(s, VerifyStep) for s in plan.steps):
        return plan, ""
    ids = {s.id for s in plan.steps}
    step_id = next(
        f"verify{n}" if n else "verify" for n in range(len(ids) + 1) if (f"verify{n}" if n else "verify") not in ids
    )
    step = VerifyStep(id=step_id, type="verify", command=command)
    return plan.model_copy(update={"steps": [*plan.steps, step]}), command
