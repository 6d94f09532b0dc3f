"""Cutting a long text to its head and tail, saying how much was cut: for what a model or a person
reads, where the whole stays in history or on disk. The one place the project does this."""

from __future__ import annotations

MARKER_ROOM = 40  # the "[... N characters cut ...]" line, with room to spare
HEAD_ONLY_BELOW = 80  # under this a head and a tail are too short to read: the head alone


def clip_middle(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters: its head and tail around a line saying how much was cut."""
    if len(text) <= limit:
        return text
    if limit < HEAD_ONLY_BELOW:
        return text[: max(limit, 0)]
    keep = limit - MARKER_ROOM
    head, tail = text[: keep // 2], text[len(text) - (keep - keep // 2) :]
    return f"{head}\n[... {len(text) - keep} characters cut ...]\n{tail}"
