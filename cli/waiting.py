"""Why a workflow waits, in iter's words, and naming the setting that changes it; printed as one
line that updates in place on a terminal (plain lines elsewhere, each said once)."""

from __future__ import annotations

import re
import sys
from typing import Any

from cli.output import err_console

# activity type -> (what it is, in a person's words; the setting that bounds how long it may take)
ACTIVITIES: dict[str, tuple[str, str]] = {
    "call_model": ("the model call", "llm.idle_timeout_s (ITER_LLM_IDLE_TIMEOUT)"),
    "safety_review": ("the safety review", "llm.idle_timeout_s (ITER_LLM_IDLE_TIMEOUT)"),
    "post_review": ("the review of the results", "llm.idle_timeout_s (ITER_LLM_IDLE_TIMEOUT)"),
    "execute_steps": ("a step", "executor.step_timeout_s (ITER_STEP_TIMEOUT)"),
    "gather_evidence": ("gathering evidence", "executor.step_timeout_s (ITER_STEP_TIMEOUT)"),
    "run_hooks": ("a hook", "the hook's timeout in .iter/hooks.yml"),
}
RETRY_SETTING = "retry.max_interval_s / ITER_RETRY_MAX_INTERVAL"
# Failure kinds whose message is already a sentence of ours that names what to do.
OWN_WORDS = ("Model", "Executor", "Docker")
ATTEMPT = re.compile(r" — attempt \d+;.*$")


def explain(pending: Any) -> str:
    """One sentence for a pending activity that is being retried; '' when it is not."""
    if pending.attempt <= 1 or not pending.last_failure.message:
        return ""
    name = pending.activity_type.name
    what, setting = ACTIVITIES.get(name, (name.replace("_", " "), ""))
    failure = pending.last_failure
    attempt = f"attempt {pending.attempt}; retried with backoff, at most {RETRY_SETTING} apart"
    if failure.HasField("timeout_failure_info"):
        kind = failure.timeout_failure_info.timeout_type
        # TimeoutType: 1 START_TO_CLOSE, 2 SCHEDULE_TO_START, 3 SCHEDULE_TO_CLOSE, 4 HEARTBEAT
        if kind == 4:
            return (
                f"waiting: the worker running {what} stopped answering (it may have died or be overloaded); "
                f"another attempt takes over; `iter worker` starts a worker — {attempt}"
            )
        if kind == 2:
            return f"waiting: no worker has picked up {what} yet; `iter worker` starts one"
        limit = f"; its limit is {setting}" if setting else ""
        return f"waiting: {what} took longer than it may{limit} — {attempt}"
    message = failure.message.strip()
    if failure.HasField("application_failure_info") and failure.application_failure_info.type.startswith(OWN_WORDS):
        return f"waiting: {message} — {attempt}"
    return f"waiting: {what} failed: {message} — {attempt}"


class StatusLine:
    """A line about waiting that replaces itself on a terminal; elsewhere each new text once."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = ""
        self.on_screen = False
        self.said: set[str] = set()

    def show(self, text: str) -> None:
        if text == self.shown:
            return
        self.shown = text
        if not text:
            self.clear()
            return
        if self.tty:
            width = max(err_console.width - 1, 20)
            line = text if len(text) <= width else text[: width - 1] + "…"
            sys.stderr.write("\r\x1b[2K\x1b[33m" + line + "\x1b[0m")
            sys.stderr.flush()
            self.on_screen = True
        else:
            key = ATTEMPT.sub("", text)  # attempt 2, 3, 4...: the same news, said once
            if key not in self.said:
                self.said.add(key)
                err_console.print(text, style="yellow", markup=False, soft_wrap=True)

    def clear(self) -> None:
        """Before anything else is printed: the transient line goes away."""
        if self.on_screen:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
            self.on_screen = False
