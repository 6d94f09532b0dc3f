"""Publishing an activity's live events (model tokens, step and hook output) to the event stream
of the workflow that runs it, through Temporal (``temporalio.contrib.workflow_streams``): the same
for a viewer on any machine.

Cost and latency: each flush is one signal, so a flush is one history event plus a workflow task.
Tokens and lines are coalesced: the first item after a quiet spell goes out at once (a viewer
sees it within one round trip), later ones wait until ``COALESCE_S`` (lines) or
``TOKEN_COALESCE_S`` (tokens) has passed since the last flush, so a fast stream costs a bounded
number of signals a second whatever its token rate. The contrib client numbers each batch, so a
retried signal is never applied twice.

Model tokens also take a fast lane that costs no history: the end of the answer so far rides in
the activity's heartbeat details (``LiveTail``), which the worker sends within its heartbeat
throttle and a reader polls with ``describe()`` (``temporal/events.py``). So tokens reach a screen
about as fast as a heartbeat, while the stream carries them in one signal a second, for readers
that come late and for every token a heartbeat did not show.

Live events are for people: a stream that cannot be reached never fails the activity. Outside an
activity (a test calling the code directly), or on a worker with ``ITER_LIVE_EVENTS=0`` (the
benchmark's baseline), publishing does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.contrib.workflow_streams import TopicHandle, WorkflowStreamClient

from activities.redact import MASK, redact
from models.events import (
    LIVE_TAIL_CHARS,
    LIVE_TAIL_KEY,
    MAX_LIVE_OUTPUT_BYTES,
    LiveTail,
    ModelStarted,
    OutputLines,
    Tokens,
    clip,
    topic_of,
)

COALESCE_S = float(os.environ.get("ITER_LIVE_COALESCE_MS", "100")) / 1000  # the worker's env: bench trade-offs
TOKEN_COALESCE_S = float(os.environ.get("ITER_LIVE_TOKEN_COALESCE_MS", "1000")) / 1000  # the fast lane is first
FALLBACK_FLUSH = timedelta(seconds=1)  # the contrib client's own timer; ours flushes first
MAX_RETRY = timedelta(seconds=30)  # a Temporal outage: live events are given up, the work goes on
CLOSE_TIMEOUT_S = 5.0
OFF_SWITCH = "ITER_LIVE_EVENTS"  # "0" on a worker: its activities publish nothing (bench baseline)

log = logging.getLogger(__name__)


class LivePublisher:
    """An async context manager; ``event``, ``token``, ``lines`` and ``heartbeat`` never block and
    never raise."""

    def __init__(self, coalesce_s: float = COALESCE_S, token_coalesce_s: float = TOKEN_COALESCE_S) -> None:
        self.coalesce_s, self.token_coalesce_s = coalesce_s, token_coalesce_s
        self._client: WorkflowStreamClient | None = None
        self._topics: dict[str, TopicHandle[Any]] = {}
        self._tokens: list[str] = []
        self._token_role = ""
        self._lines: list[str] = []
        self._lines_ref: tuple[str, str] = ("step", "")
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0  # when the pending timer fires
        self._calls = 0  # model calls started in this activity
        self._call = ""  # the current one's name
        self._chars = 0  # characters of its answer so far
        self._sent_chars = 0  # ... of which the stream has been sent
        self._tail = ""  # the answer's end, for the heartbeat
        self._details: dict[str, Any] = {}  # the activity's own heartbeat details, which the tail joins
        self._fast = False  # whether the heartbeat carries the tail
        self._last_flush = 0.0
        self._output_bytes: dict[str, int] = {}
        self._broken = False
        self._in_key_block: set[str] = set()
        self._header: BaseModel | None = None

    async def __aenter__(self) -> LivePublisher:
        if activity.in_activity() and os.environ.get(OFF_SWITCH, "1") != "0":
            self._fast = True
            try:
                self._client = WorkflowStreamClient.from_within_activity(
                    batch_interval=FALLBACK_FLUSH, max_retry_duration=MAX_RETRY
                )
                await self._client.__aenter__()
            except Exception as exc:  # no parent workflow, no client: nobody to tell
                log.warning("live events off for this activity: %s", exc)
                self._client = None
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._send()
        if self._client is None:
            return
        try:
            # Flush first, then close: closing right after a force_flush publish cancels the contrib
            # client's flusher while its wait_for is completing, which on Python 3.11 swallows the
            # cancellation (the flusher loops on and the close waited the whole CLOSE_TIMEOUT_S).
            await asyncio.wait_for(self._client.flush(), CLOSE_TIMEOUT_S)
            await asyncio.wait_for(self._client.__aexit__(None, None, None), CLOSE_TIMEOUT_S)
        except (TimeoutError, Exception) as err:  # the stream is for people; the result is in history
            log.warning("live events not delivered: %s", err)

    # --- what activities call ----------------------------------------------------------------

    def event(self, event: BaseModel) -> None:
        """A boundary (a model starts, a step ends): sent at once, after what came before it."""
        self._send()
        if isinstance(event, ModelStarted):
            self._start_call()
        self._publish(event)

    def heartbeat(self, details: dict[str, Any]) -> None:
        """The activity's heartbeat, with the answer's tail joined to ``details`` (a heartbeat
        carries one set of details: the last one sent wins)."""
        self._details = dict(details)
        self._beat()

    def before_first_token(self, event: BaseModel) -> None:
        """``event`` is sent only if a token follows (a model's header on a quiet retry)."""
        self._header = event

    def token(self, role: str, text: str) -> None:
        if self._header is not None:
            self.event(self._header)
            self._header = None
        if self._tokens and role != self._token_role:
            self._send()
        self._token_role = role
        self._tokens.append(text)
        self._chars += len(text)
        self._tail = (self._tail + text)[-LIVE_TAIL_CHARS:]
        self._beat()
        self._soon(self.token_coalesce_s)

    def lines(self, source: str, ref: str, lines: list[str]) -> None:
        """Output lines of a step (ref: its run key) or a hook (ref: its point), capped per ref,
        with secrets masked: the lines travel through workflow history."""
        if (source, ref) != self._lines_ref and self._lines:
            self._send()
        self._lines_ref = (source, ref)
        used = self._output_bytes.get(ref, 0)
        for line in self._masked(ref, lines):
            if used > MAX_LIVE_OUTPUT_BYTES:
                break
            used += len(line) + 1
            self._lines.append(clip(line))
            if used > MAX_LIVE_OUTPUT_BYTES:
                self._lines.append(f"[live output stops after {MAX_LIVE_OUTPUT_BYTES:,} bytes; the result has it]")
        self._output_bytes[ref] = used
        if self._lines:
            self._soon(self.coalesce_s)

    def _masked(self, ref: str, lines: list[str]) -> list[str]:
        """``redact`` per line, and a private key block hidden whole (it spans lines, and batches)."""
        shown: list[str] = []
        for line in lines:
            if ref in self._in_key_block:
                if "-----END" in line:
                    self._in_key_block.discard(ref)
                continue
            if "-----BEGIN" in line and "PRIVATE KEY" in line:
                shown.append(MASK)
                if "-----END" not in line:
                    self._in_key_block.add(ref)
                continue
            shown.append(redact(line))
        return shown

    # --- coalescing ---------------------------------------------------------------------------

    def _start_call(self) -> None:
        self._calls += 1
        info = activity.info() if activity.in_activity() else None
        self._call = f"{info.activity_id}.{info.attempt}.{self._calls}" if info else str(self._calls)
        self._chars = self._sent_chars = 0
        self._tail = ""

    def _beat(self) -> None:
        if not activity.in_activity():
            return
        details = dict(self._details)
        if self._fast and self._call and self._chars:
            tail = LiveTail(call=self._call, role=self._token_role, chars=self._chars, tail=self._tail)
            details[LIVE_TAIL_KEY] = tail.model_dump()
        try:
            activity.heartbeat(details)
        except Exception as exc:  # the heartbeat is for people and for liveness; the call goes on
            log.warning("heartbeat not sent: %s", exc)

    def _soon(self, delay: float) -> None:
        due = self._last_flush + delay
        if self._timer is not None:
            if self._due <= due:
                return
            self._timer.cancel()  # lines are due sooner than the tokens' timer
            self._timer = None
        wait = due - time.monotonic()
        if wait <= 0:
            self._send()
        else:
            self._due = due
            self._timer = asyncio.get_running_loop().call_later(wait, self._send)

    def _send(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._tokens:
            text = "".join(self._tokens)
            self._publish(Tokens(role=self._token_role, text=text, call=self._call, at=self._sent_chars))
            self._sent_chars += len(text)
            self._tokens = []
        if self._lines:
            source, ref = self._lines_ref
            self._publish(OutputLines(source=source, ref=ref, lines=self._lines))  # type: ignore[arg-type]
            self._lines = []

    def _publish(self, event: BaseModel) -> None:
        self._last_flush = time.monotonic()
        if self._client is None or self._broken:
            return
        name = topic_of(event)
        if name not in self._topics:
            self._topics[name] = self._client.topic(name)
        try:
            self._topics[name].publish(event, force_flush=True)
        except Exception as exc:
            self._broken = True
            log.warning("live events off for this activity: %s", exc)


TAIL_POLL_S = 0.1


async def tail_file(path: Path, on_lines: Callable[[list[str]], None], done: asyncio.Event) -> None:
    """Hand each complete line appended to ``path`` to ``on_lines`` until ``done`` is set, then the rest."""
    offset = 0
    partial = b""
    while True:
        finished = done.is_set()
        try:
            with path.open("rb") as fh:
                fh.seek(offset)
                data = fh.read(MAX_LIVE_OUTPUT_BYTES)
        except FileNotFoundError:
            data = b""
        offset += len(data)
        chunks = (partial + data).split(b"\n")
        partial = chunks.pop()
        if finished and partial and not data:
            chunks.append(partial)
            partial = b""
        if chunks:
            on_lines([c.decode(errors="replace").rstrip("\r") for c in chunks])
        if finished and not data:
            return
        if not data:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), TAIL_POLL_S)
