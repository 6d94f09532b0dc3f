"""Bounds on what a model's answer may cost: pure helpers both workflows and the reviewer use."""

from __future__ import annotations

from models.clip import MARKER_ROOM, clip_middle
from models.request import ModelCallOutput


def truncated_reason(out: ModelCallOutput) -> str:
    if out.usage.done_reason.startswith("cut off at"):
        return f"the answer was {out.usage.done_reason} (the cap on a model answer, bounds.max_answer_bytes)"
    return "the answer was cut off by the length limit"


REPAIR_ECHO_CHARS = 8_000  # how much of an invalid answer goes back to the model: history stays bounded


def echo(answer: str) -> str:
    return clip_middle(answer, REPAIR_ECHO_CHARS + MARKER_ROOM)
