"""Small shared vocabulary: command names, option clusters, durations, string literals."""

from __future__ import annotations

import math
import os
import re

from policy.tokens import Word

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "fish", "tcsh", "csh", "busybox"})
FETCHERS = frozenset({"curl", "wget", "fetch", "aria2c", "http", "https", "xh", "lynx", "w3m", "links"})
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_STRING_LITERAL = re.compile(r"'''(.*?)'''|\"\"\"(.*?)\"\"\"|'((?:\\.|[^'\\\n])*)'|\"((?:\\.|[^\"\\\n])*)\"", re.S)


def command_name(word: Word) -> str:
    """``/usr/bin/rm`` and ``rm`` are the same command."""
    return os.path.basename(word.text.rstrip("/")) if "/" in word.text else word.text


def is_python(name: str) -> bool:
    return re.fullmatch(r"(python|pypy)[0-9.]*", name) is not None


def is_interpreter(name: str) -> bool:
    """Commands that run code read from standard input when given no script."""
    return name in SHELLS or is_python(name) or name in {"perl", "ruby", "node", "php", "lua", "Rscript"}


def parse_duration(text: str) -> float | None:
    """``timeout``/``sleep`` durations: 10, 1.5, 10s, 5m, 2h, 1d, infinity. None when unreadable."""
    if text.lower() in ("inf", "infinity"):
        return math.inf
    m = _DURATION.fullmatch(text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def short_flags(args: list[Word]) -> set[str]:
    """Single-letter options, clusters split: ``-rf`` -> {r, f}. Stops at ``--``."""
    flags: set[str] = set()
    for a in args:
        t = a.text
        if t == "--":
            break
        if t.startswith("-") and not t.startswith("--") and len(t) > 1:
            flags.update(t[1:])
    return flags


def long_flags(args: list[Word]) -> set[str]:
    """``--force`` and ``--output=x`` give {"--force", "--output"}."""
    out: set[str] = set()
    for a in args:
        if a.text == "--":
            break
        if a.text.startswith("--"):
            out.add(a.text.split("=", 1)[0])
    return out


def has_long(args: list[Word], name: str) -> bool:
    """``--force`` given in full or, as GNU and git allow, abbreviated (``--forc``)."""
    for a in args:
        if a.text == "--":
            return False
        opt = a.text.split("=", 1)[0]
        if opt.startswith("--") and len(opt) >= 4 and name.startswith(opt):
            return True
    return False


def operands(args: list[Word]) -> list[Word]:
    """Arguments that are not options (everything after ``--`` counts)."""
    out: list[Word] = []
    rest = False
    for a in args:
        if rest:
            out.append(a)
        elif a.text == "--":
            rest = True
        elif not (a.text.startswith("-") and len(a.text) > 1):
            out.append(a)
    return out


def subcommand(args: list[Word], value_options: frozenset[str] = frozenset()) -> tuple[str, list[Word]]:
    """``git -C dir push -f`` -> ("push", [-f]); options before the subcommand are skipped."""
    i = 0
    while i < len(args) and args[i].text.startswith("-"):
        i += 2 if args[i].text in value_options else 1
    if i >= len(args):
        return "", []
    return args[i].text, args[i + 1 :]


def string_literals(code: str) -> list[str]:
    """Quoted strings in a snippet of Python/JS/Perl/Ruby: where paths and shell commands hide."""
    found = [next(g for g in m.groups() if g is not None) for m in _STRING_LITERAL.finditer(code)]
    # subprocess.run(["rm", "-rf", "/"]) is one command spread over a list
    for lst in re.finditer(r"\[([^\[\]]*)\]", code):
        items = [next(g for g in m.groups() if g is not None) for m in _STRING_LITERAL.finditer(lst.group(1))]
        if len(items) > 1:
            found.append(" ".join(items))
    return found
