"""How programs take the code they run: wrappers, ``-c`` strings, standard input, ``-exec``.

Pure knowledge about command-line conventions, shared by the walker (which follows the code) and
the rules (which ask, for instance, whether ``sh`` at the end of a pipe runs what it reads).
"""

from __future__ import annotations

import os
import re

from policy.invocation import Invocation
from policy.tokens import Word
from policy.words import SHELLS, is_python, parse_duration

# wrapper -> its options that take a value (the wrapped command follows the options)
WRAPPERS: dict[str, frozenset[str]] = {
    "sudo": frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T", "-R", "--user", "--group",
                       "--host", "--prompt", "--chdir"}),
    "doas": frozenset({"-u", "-C"}),
    "env": frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"}),
    "nohup": frozenset(), "setsid": frozenset(), "time": frozenset(), "builtin": frozenset(),
    "command": frozenset(), "exec": frozenset({"-a"}), "unbuffer": frozenset(), "caffeinate": frozenset(),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "-p", "--class", "--classdata"}),
    "stdbuf": frozenset({"-i", "-o", "-e", "--input", "--output", "--error"}),
    "timeout": frozenset({"-s", "-k", "--signal", "--kill-after"}),
    "xargs": frozenset({"-I", "-n", "-P", "-L", "-l", "-d", "-E", "-e", "-s", "-a", "--max-args", "--max-procs",
                        "--max-lines", "--delimiter", "--arg-file", "--replace", "--eof", "--max-chars"}),
    "chroot": frozenset({"--userspec", "--groups"}),
    "busybox": frozenset(),
}
INLINE_FLAGS = {"node": {"-e", "--eval", "-p", "--print"}, "perl": {"-e", "-E"}, "ruby": {"-e"}, "php": {"-r"},
                "bun": {"-e", "--eval"}, "deno": {"eval"}, "Rscript": {"-e"}, "lua": {"-e"}}
_SHELL_VALUE_OPTIONS = frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"})
# Options that leave an interpreter reading its program from standard input.
_NEUTRAL = frozenset({"-u", "-B", "-E", "-I", "-O", "-OO", "-q", "-s", "-S", "-b", "-bb", "-i", "-w", "-W", "-X"})
_SCRIPT_DIR = re.compile(
    r'^\$\((cd\s+)?"?\$\(dirname\s+"?\$(0|\{0\}|\{BASH_SOURCE(\[0\])?\}|BASH_SOURCE)"?\)"?'
    r"(\s*(&&|;)\s*pwd(\s+-P)?)?\)"
)


def skip_options(words: list[Word], takes_value: frozenset[str]) -> list[Word]:
    i = 0
    while i < len(words) and words[i].text.startswith("-") and words[i].text != "-":
        if words[i].text == "--":
            return words[i + 1 :]
        i += 2 if words[i].text in takes_value else 1
    return words[i:]


def option_value(words: list[Word], *names: str) -> str | None:
    for i, w in enumerate(words):
        if w.text in names and i + 1 < len(words):
            return words[i + 1].text
        for n in names:
            if n.startswith("--") and w.text.startswith(n + "="):
                return w.text.split("=", 1)[1]
    return None


def strip_wrapper(name: str, rest: list[Word], timeout: float | None) -> tuple[list[Word], float | None]:
    """The command a wrapper runs (a suffix of ``rest``), and the tightest timeout so far."""
    if name == "env":
        rest = skip_options(rest, WRAPPERS["env"])
        while rest and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", rest[0].text):
            rest = rest[1:]
        return rest, timeout
    if name == "nice" and rest and re.fullmatch(r"-\d+", rest[0].text):
        rest = rest[1:]
    if name == "command" and any(w.text in ("-v", "-V") for w in rest[:1]):
        return [], timeout  # `command -v x` looks x up, it does not run it
    rest = skip_options(rest, WRAPPERS[name])
    if name == "timeout" and rest:
        seconds = parse_duration(rest[0].text)
        if not seconds:  # unreadable, or 0, which disables the limit
            return rest[1:], timeout
        return rest[1:], seconds if timeout is None else min(timeout, seconds)
    if name == "chroot" and rest:
        rest = rest[1:]
    return rest, timeout


def shell_code(inv: Invocation) -> Word | None:
    """The string after ``-c`` (``bash -lc 'x'``, ``bash -o pipefail -c 'x'``, ``su root -c 'x'``)."""
    args, i = inv.args, 0
    while i < len(args):
        t = args[i].text
        if t in _SHELL_VALUE_OPTIONS:
            i += 2
            continue
        if (t.startswith("-") and not t.startswith("--") and "c" in t[1:]) or t == "--command":
            rest = args[i + 1 :]
            if rest and rest[0].text == "--":
                rest = rest[1:]
            return rest[0] if rest else None
        if not t.startswith(("-", "+")) and inv.name != "su":
            return None
        i += 1
    return None


def script_operand(inv: Invocation) -> Word | None:
    """The script file a shell runs: ``bash scripts/x.sh`` (None for -c, -s or stdin)."""
    if shell_code(inv) is not None or stdin_script(inv):
        return None
    rest = skip_options(inv.args, _SHELL_VALUE_OPTIONS)
    return rest[0] if rest else None


def stdin_script(inv: Invocation) -> bool:
    """Does this interpreter take its program from standard input (``sh``, ``bash -s``, ``python -``)?"""
    texts = inv.texts
    if inv.name in SHELLS:
        i = 0
        while i < len(texts):
            t = texts[i]
            if t in _SHELL_VALUE_OPTIONS:
                i += 2
                continue
            if t in ("--version", "--help"):
                return False
            if t == "--":
                return i + 1 >= len(texts)
            if t.startswith(("-", "+")) and t not in ("-", "+"):
                if not t.startswith("--") and "c" in t[1:]:
                    return False
                if not t.startswith("--") and "s" in t[1:]:
                    return True
                i += 1
                continue
            return t in ("-", "/dev/stdin")
        return True
    if inv.name in ("source", "."):
        return bool(texts) and texts[0] in ("/dev/stdin", "-")
    if is_python(inv.name) or inv.name in INLINE_FLAGS:
        for t in texts:
            if t == "-" or t == "/dev/stdin":
                return True
            if t not in _NEUTRAL and not re.fullmatch(r"-[WX]\S+", t):
                return False
        return True
    return False


def inline_code(inv: Invocation) -> str | None:
    """The program text of ``python -c CODE``, ``node -e CODE``, ``perl -e CODE``..."""
    flags = {"-c"} if is_python(inv.name) else INLINE_FLAGS.get(inv.name, set())
    if not flags:
        return None
    args = inv.args
    for i, flag in enumerate(args):
        t = flag.text
        if t in flags or (is_python(inv.name) and re.fullmatch(r"-[A-Za-z]*c", t)):
            return args[i + 1].text if i + 1 < len(args) else None
        if t in ("-W", "-X"):
            continue
        if t == "-m" or not t.startswith("-") or t == "-":
            return None  # a module or a script: the options after it are its own
    return None


def exec_commands(args: list[Word]) -> list[list[Word]]:
    """The commands of ``find ... -exec CMD {} ;`` (and ``-execdir``, ``-ok``, fd's ``-x``)."""
    found, i = [], 0
    while i < len(args):
        if args[i].text in ("-exec", "-execdir", "-ok", "-okdir", "-x", "--exec", "-X", "--exec-batch"):
            j = i + 1
            while j < len(args) and args[j].text not in (";", "+", r"\;"):
                j += 1
            found.append(args[i + 1 : j])
            i = j
        i += 1
    return [f for f in found if f]


def script_dir_target(text: str, script_dir: str | None) -> str | None:
    """``cd "$(dirname "$0")/.."`` inside a script whose directory is known: where it goes."""
    if script_dir is None:
        return None
    m = _SCRIPT_DIR.match(text)
    if not m:
        return None
    rest = text[m.end() :].lstrip("/")
    return os.path.normpath(os.path.join(script_dir, rest)) if rest else script_dir
