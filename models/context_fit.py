"""Fitting a conversation into the model server's real context window.

A prompt that does not fit is cut by the server (Ollama truncates silently) or refused (llama.cpp
answers HTTP 400 after the whole prompt was sent); a repair conversation grows with each answer.
So every call is fitted before it goes out: the answer's limit shrinks to what is left, older
repair turns go, an echoed invalid answer is shortened, and a prompt that cannot fit at all is
refused at once with the numbers. Pure: the client discovers the window and calls this."""

from __future__ import annotations

from dataclasses import dataclass

from models.clip import MARKER_ROOM, clip_middle

# Code and JSON tokenize at about 3 characters per token (English prose nearer 4): estimating
# with 3 errs on the side of fitting.
CHARS_PER_TOKEN = 3
MESSAGE_OVERHEAD = 8  # the chat template's role markers around each message
MARGIN = 64
ECHO_KEEP_CHARS = 1200  # what stays of an invalid answer shown back to the model


class DoesNotFit(ValueError):
    """Even the shortest form of the conversation leaves no room for an answer."""

    def __init__(self, needed: int, window: int, answer: int) -> None:
        super().__init__(
            f"the prompt needs about {needed:,} tokens and the answer {answer:,}, but the model's context "
            f"window is {window:,}: select fewer or smaller files (iter files select), or use a model "
            f"or server with a larger context (llm.num_ctx)"
        )
        self.needed, self.window, self.answer = needed, window, answer


def window_from(provider: str, payload: object, configured: int) -> int:
    """The context window a server reports for one request: llama.cpp's ``/props`` (``n_ctx`` of a
    slot), Ollama's ``/api/show`` (the model's own length, of which ``num_ctx`` is what iter asks
    for); else the configured value."""
    if not isinstance(payload, dict):
        return configured
    if provider == "ollama":
        info = payload.get("model_info") or {}
        lengths = [int(v) for k, v in info.items() if str(k).endswith(".context_length")]
        return min(configured, lengths[0]) if lengths else configured
    n_ctx = (payload.get("default_generation_settings") or {}).get("n_ctx") or payload.get("n_ctx")
    return int(n_ctx) if n_ctx else configured


def estimate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 1


def conversation_tokens(messages: list[dict[str, str]]) -> int:
    return sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD for m in messages)


@dataclass
class Fitted:
    messages: list[dict[str, str]]
    max_tokens: int
    prompt_tokens: int  # the estimate
    dropped_turns: int = 0
    shortened: int = 0


def _shorten(message: dict[str, str]) -> dict[str, str]:
    return {**message, "content": clip_middle(message["content"], ECHO_KEEP_CHARS + MARKER_ROOM)}


def fit(messages: list[dict[str, str]], window: int, max_tokens: int, min_answer: int) -> Fitted:
    """The conversation and answer limit that fit ``window``; raises ``DoesNotFit``.

    The first two messages (the system prompt and the request) and the last two (the latest answer
    and what was wrong with it) always stay; turns in between go oldest first."""
    budget = window - MARGIN
    msgs = list(messages)
    dropped = shortened = 0

    def room() -> int:
        return budget - conversation_tokens(msgs)

    while room() < min_answer and len(msgs) > 4:
        del msgs[2:4]  # the oldest assistant answer and the reply to it
        dropped += 1
    if room() < min_answer:
        for i, m in enumerate(msgs):
            if i >= 2 and m["role"] == "assistant":
                new = _shorten(m)
                shortened += new is not m
                msgs[i] = new
    left = room()
    if left < min_answer:
        raise DoesNotFit(conversation_tokens(msgs), window, min_answer)
    return Fitted(msgs, min(max_tokens, left), conversation_tokens(msgs), dropped, shortened)
