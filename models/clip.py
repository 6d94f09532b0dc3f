"""Cutting a long text to its head and tail, saying how much was cut: for what a model or a person
reads, where the whole stays in history or on disk."""

from __future__ import annotations


def clip_middle(text: str, limit: int) -> str:
    """Head and tail of a text longer than ``limit``, saying how much was cut."""
    if len(text) <= limit:
        return text
    keep = max(limit - 40, 2)
    return text[: keep // 2] + f" [... {len(text) - keep} characters cut ...] " + text[-(keep - keep // 2) :]
