"""A degenerate stream: a small model that loses its way repeats a short pattern (``"s1: s1: s1:
..."``, endless newlines) until the length limit, which at a few tokens per second is many minutes
of nothing. Seeing it early turns those minutes into an invalid answer that the repair loop can act
on. Pure: the stream reader asks, it decides nothing else."""

from __future__ import annotations

WINDOW = 400  # characters of the tail that must all be one pattern repeating
MAX_PERIOD = 40  # the longest pattern counted as "short"
MIN_REPEATS = 8  # a pattern that fills the window fewer times than this may be real content


def repeating_pattern(text: str, window: int = WINDOW) -> str:
    """The short pattern the last ``window`` characters repeat, or "" when they do not.

    Real code and JSON are not periodic over 400 characters with a period of 40 or less (even a
    table of data varies its numbers); a stuck model is, exactly."""
    if len(text) < window:
        return ""
    tail = text[-window:]
    for period in range(1, min(MAX_PERIOD, window // MIN_REPEATS) + 1):
        if tail[period:] == tail[:-period]:
            return tail[-period:]
    return ""


class RepetitionGuard:
    """Fed the pieces of a stream; ``stuck`` says once the tail has become a repeating pattern.
    Checks at most every ``every`` characters, so a long stream costs little."""

    def __init__(self, window: int = WINDOW, every: int = 64) -> None:
        self.window = window
        self.every = every
        self._parts: list[str] = []
        self._size = 0
        self._checked_at = 0
        self.pattern = ""

    def feed(self, piece: str) -> bool:
        self._parts.append(piece)
        self._size += len(piece)
        if self._size - self._checked_at < self.every or self._size < self.window:
            return False
        self._checked_at = self._size
        tail = "".join(self._parts)[-self.window :]
        self._parts = [tail]  # keep only what the next check can need
        self.pattern = repeating_pattern(tail, self.window)
        return bool(self.pattern)
