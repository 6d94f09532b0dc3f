"""Where a workflow run's live stream (tokens, model events) is written and read."""

from __future__ import annotations

from pathlib import Path

from models.config import Settings, data_dir


def live_path(settings: Settings, key: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
    return data_dir(settings) / "live" / f"{safe}.jsonl"
