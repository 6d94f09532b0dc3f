"""What the shell reader gives the rules: words (unquoted, with what is only known at run time
marked) and redirections, and the error for shell that cannot be read."""

from __future__ import annotations

from dataclasses import dataclass


class ShellSyntaxError(ValueError):
    """The command cannot be read with confidence, so it must not run."""


@dataclass(frozen=True)
class Word:
    raw: str
    text: str  # quotes removed; expansions kept as written, e.g. "$HOME/x"
    dynamic: bool = False  # contains an expansion only known at run time
    glob: bool = False  # unquoted * ? [
    brace: bool = False  # unquoted {a,b} or {1..3}
    tilde: bool = False  # unquoted leading ~
    subs: tuple[str, ...] = ()  # sources of $(...), `...`, <(...), >(...)
    params: tuple[str, ...] = ()  # names of the parameters it expands


@dataclass
class Redir:
    op: str
    fd: str | None
    target: Word | None = None
    heredoc: str | None = None  # the body, once read
    delimiter: str = ""
    heredoc_subs: tuple[str, ...] = ()  # sources of the $(...) in the body (none when the delimiter is quoted)
