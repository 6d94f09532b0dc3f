"""The merge of a whole-file answer into the file as it is (models/definitions.py), on the host
that holds the request's worktree: a local activity of the workflow worker, as the prompt is."""

from __future__ import annotations

from pathlib import Path

from temporalio import activity

from activities.reads import read_capped
from models.definitions import KeepInput, KeepOutput, merge

MAX_MERGED_BYTES = 256 * 1024  # a file this large is not rewritten whole (edit blocks are), nor merged


@activity.defn
async def keep_definitions(inp: KeepInput) -> KeepOutput:
    original = read_capped(Path(inp.workspace), inp.path, MAX_MERGED_BYTES)
    if original is None or original.startswith("[refused") or len(original.encode()) >= MAX_MERGED_BYTES:
        return KeepOutput(content=inp.content)
    content, kept = merge(inp.path, original, inp.content, inp.request_text)
    return KeepOutput(content=content, kept=kept)
