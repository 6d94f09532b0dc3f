"""The analysis of a command line, as data: what the rules receive."""

from __future__ import annotations

from dataclasses import dataclass, field

from policy.parsers.shell import Script, SimpleCommand
from policy.tokens import Word


@dataclass(frozen=True)
class Problem:
    """Code that cannot be checked: unparseable shell blocks; code only known at run time, or a
    script the rules cannot see, is held (``hold``): never let through unseen."""

    point: int
    reason: str
    hold: bool = False


@dataclass
class Invocation:
    """One program the command line runs, seen through wrappers and nested shells."""

    name: str  # the command's name, without directory: "rm" for /bin/rm; "" for a redirection alone
    argv0: Word | None
    args: list[Word]
    cmd: SimpleCommand  # the simple command it comes from: redirections, pipes, background
    wrappers: tuple[str, ...] = ()  # the prefixes around it, outermost first: ("sudo", "timeout")
    timeout_s: float | None = None  # the tightest `timeout N` around it (seconds)
    via: str = ""  # where it was found, e.g. "bash -c" or "$(...)"
    cwds: frozenset[str | None] = frozenset({"."})  # directories it may run in, from the root; None: unknown
    wraps: bool = False  # a prefix such as sudo or timeout N: ``args`` are its own options only
    cd_dir: str | None = None  # cd to a known idiom such as "$(dirname "$0")/..": the directory it means

    @property
    def texts(self) -> list[str]:
        return [a.text for a in self.args]

    @property
    def normalized(self) -> str:
        """The form project allow/deny rules match: name and arguments, quotes and wrappers removed."""
        return " ".join([self.name, *self.texts]).strip()


@dataclass
class ScriptInfo:
    """One parsed piece of shell (the step, or a ``bash -c`` string, a script file...)."""

    script: Script
    via: str
    invocations: list[Invocation] = field(default_factory=list)


@dataclass
class Analysis:
    invocations: list[Invocation] = field(default_factory=list)
    scripts: list[ScriptInfo] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    inline_code: list[tuple[str, str, Invocation]] = field(default_factory=list)  # (language, code, where)
    python_files: list[tuple[str, str, Invocation]] = field(default_factory=list)  # (path, text, what runs it)
