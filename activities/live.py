"""The live side channel: model tokens and progress lines for whoever watches a workflow.

Tokens never travel through workflow history (it has hard limits); they are appended as JSON lines
to ``<data dir>/live/<key>.jsonl``, which ``iter orchestrate`` and ``iter watch`` tail. The final
text is still the activity's result, so history keeps the full record.
"""

from __future__ import annotations

import json
import time

from models.config import Settings
from models.live import live_path


class LiveWriter:
    """Appends events; buffered a little so a fast stream costs few syscalls."""

    FLUSH_EVERY_S = 0.05

    def __init__(self, settings: Settings, key: str) -> None:
        self.path = live_path(settings, key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")
        self._pending: list[str] = []
        self._last_flush = time.monotonic()

    def event(self, kind: str, **fields: object) -> None:
        self._pending.append(json.dumps({"kind": kind, **fields}) + "\n")
        if kind != "token" or time.monotonic() - self._last_flush > self.FLUSH_EVERY_S:
            self.flush()

    def token(self, text: str) -> None:
        self.event("token", text=text)

    def flush(self) -> None:
        if self._pending:
            self._fh.write("".join(self._pending))
            self._fh.flush()
            self._pending.clear()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()
        self._fh.close()
