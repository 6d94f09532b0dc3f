"""Programs that run other commands, read in their own terms: what they run is checked as a command.

- ``awk``: ``system("...")``, ``"..." | getline``, ``print | "..."``;
- ``sed``: the ``e`` command (GNU: ``1e CMD`` runs CMD, ``e`` alone and ``s///e`` run the text);
- ``tar``: ``--checkpoint-action=exec=``, ``--to-command``, ``-I``/``--use-compress-program``,
  ``--info-script``/``--new-volume-script``;
- ``script -c``, ``flock FILE CMD`` / ``flock FILE -c CMD``, and the project runners
  ``poetry run``, ``uv run``, ``pipenv run``, ``pdm run``, ``hatch run``, ``rye run``,
  ``conda run``, ``nix-shell --run``;
- ``printf``/``echo -e`` text decoded the way they print it (``printf '\\162\\155'`` is ``rm``),
  for when it is piped into a shell.

``embedded`` returns (label, shell text) pairs to check like the step itself, and what could not
be read (a program built at run time, ``sed e`` with no command): held, never fine.
"""

from __future__ import annotations

import re

from policy.invocation import Invocation
from policy.tokens import Word

_AWK = frozenset({"awk", "gawk", "mawk", "nawk", "busybox-awk"})
_SED = frozenset({"sed", "gsed"})
_RUNNERS: dict[str, frozenset[str]] = {  # tool -> options of `TOOL run` that take a value
    "poetry": frozenset({"-C", "--directory", "-P", "--project"}),
    "uv": frozenset({"--with", "--python", "-p", "--directory", "--project", "--package", "--extra", "--group",
                     "--env-file", "--index", "--with-requirements"}),
    "pipenv": frozenset(), "pdm": frozenset({"-p", "--project"}), "hatch": frozenset({"-e", "--env"}),
    "rye": frozenset(), "conda": frozenset({"-n", "--name", "-p", "--prefix"}),
    "mamba": frozenset({"-n", "--name", "-p", "--prefix"}), "pixi": frozenset({"-e", "--environment"}),
}
_AWK_STRING = r'"((?:[^"\\]|\\.)*)"'
_AWK_SYSTEM = re.compile(r"\bsystem\s*\(\s*" + _AWK_STRING + r"\s*\)")
_AWK_GETLINE = re.compile(_AWK_STRING + r"\s*\|\s*getline")
_AWK_PIPE_TO = re.compile(r"\|\s*" + _AWK_STRING)
_AWK_ANY_RUN = re.compile(r"\bsystem\s*\(|\|\s*getline|\bprint[f]?\b[^;}]*\|")
_SED_EXEC = re.compile(r"(?:^|[;\n{}])\s*(?:(?:\d+|\$|/(?:[^/\\]|\\.)*/)(?:\s*,\s*(?:\d+|\$|/(?:[^/\\]|\\.)*/))?)?"
                       r"\s*!?\s*e(?:\s+([^;\n}]*))?\s*(?=$|[;\n}])")
_SED_S_EXEC = re.compile(r"(?:^|[;\n{}])\s*[^;\n]*?s(.)(?:(?!\1)[^\\]|\\.)*\1(?:(?!\1)[^\\]|\\.)*\1[gpiImMw0-9]*e")
_TAR_COMMANDS = ("--checkpoint-action=exec=", "--to-command=", "--use-compress-program=", "--info-script=",
                 "--new-volume-script=", "--rsh-command=")
_PRINTF_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "\\": "\\",
                   "e": "\x1b", "E": "\x1b", '"': '"', "'": "'"}

Embedded = tuple[list[tuple[str, str]], list[str]]


def embedded(inv: Invocation) -> Embedded:
    """(label, command) pairs ``inv`` runs, and reasons it runs something unreadable."""
    name = inv.name
    if name in _AWK:
        return _awk(inv)
    if name in _SED:
        return _sed(inv)
    if name in ("tar", "bsdtar", "gtar"):
        return _tar(inv)
    if name == "script":
        code = _option(inv.args, "-c", "--command")
        return ([("script -c", code)] if code else []), []
    if name == "flock":
        return _flock(inv)
    if name in _RUNNERS and inv.args and inv.args[0].text == "run":
        rest = _skip(inv.args[1:], _RUNNERS[name])
        return ([(f"{name} run", _join(rest))] if rest else []), []
    if name == "nix-shell":
        code = _option(inv.args, "--run", "--command")
        return ([("nix-shell --run", code)] if code else []), []
    return [], []


def printed_text(inv: Invocation) -> str:
    """What ``echo``/``printf`` prints, escapes decoded (``printf '\\162\\155 -rf .'`` prints ``rm -rf .``)."""
    texts = inv.texts
    if inv.name == "printf":
        if not texts:
            return ""
        fmt, args = texts[0], texts[1:]
        out = _decode_escapes(fmt)
        if "%" in out:
            try:
                out = out.replace("%b", "%s") % tuple(args[: out.count("%") - 2 * out.count("%%")])
            except (TypeError, ValueError):
                out = out + " " + " ".join(args)
        elif args:
            out = out + " " + " ".join(args)
        return out
    flags = [t for t in texts[:2] if re.fullmatch(r"-[neE]+", t)]
    body = " ".join(texts[len(flags) :])
    return _decode_escapes(body) if any("e" in f for f in flags) else body


def _awk(inv: Invocation) -> Embedded:
    if any(a.text in ("-f", "--file") or a.text.startswith("--file=") for a in inv.args):
        return [], ["`awk -f` runs a program file the rules do not read"]
    program = _awk_program(inv.args)
    if program is None:
        return [], []
    found = [("awk system()", _unescape_awk(m.group(1))) for m in _AWK_SYSTEM.finditer(program)]
    found += [("awk getline", _unescape_awk(m.group(1))) for m in _AWK_GETLINE.finditer(program)]
    found += [("awk print |", _unescape_awk(m.group(1))) for m in _AWK_PIPE_TO.finditer(program)]
    unknown = []
    if _AWK_ANY_RUN.search(program) and not found:
        unknown.append("`awk` runs a command its program builds at run time")
    return found, unknown


def _awk_program(args: list[Word]) -> str | None:
    i = 0
    while i < len(args):
        t = args[i].text
        if t in ("-F", "-v", "--assign", "--field-separator") or (t.startswith(("-v", "-F")) and len(t) == 2):
            i += 2
            continue
        if t.startswith("-") and t != "-":
            i += 1
            continue
        return t
    return None


def _sed(inv: Invocation) -> Embedded:
    scripts: list[str] = []
    args, i, plain = inv.args, 0, True
    while i < len(args):
        t = args[i].text
        if t in ("-e", "--expression") and i + 1 < len(args):
            scripts.append(args[i + 1].text)
            plain = False
            i += 2
            continue
        if t.startswith("--expression="):
            scripts.append(t.split("=", 1)[1])
            plain = False
        elif t in ("-f", "--file"):
            return [], ["`sed -f` runs a script file the rules do not read"]
        elif not t.startswith("-") and plain:
            scripts.append(t)
            plain = False
        i += 1
    found: list[tuple[str, str]] = []
    unknown: list[str] = []
    for script in scripts:
        for m in _SED_EXEC.finditer(script):
            if m.group(1) and m.group(1).strip():
                found.append(("sed e", m.group(1).strip()))
            else:
                unknown.append("`sed`'s e command runs the text it reads as a command")
        if _SED_S_EXEC.search(script):
            unknown.append("`sed`'s s///e runs the text it substitutes as a command")
    return found, unknown


def _tar(inv: Invocation) -> Embedded:
    found = []
    args = inv.args
    for i, a in enumerate(args):
        t = a.text
        for prefix in _TAR_COMMANDS:
            if t.startswith(prefix):
                found.append((f"tar {prefix.rstrip('=')}", t[len(prefix) :]))
        if t in ("-I", "-F", "--to-command", "--use-compress-program", "--info-script", "--new-volume-script",
                 "--rsh-command") and i + 1 < len(args):
            found.append((f"tar {t}", args[i + 1].text))
    return found, []


def _flock(inv: Invocation) -> Embedded:
    rest = _skip(inv.args, frozenset({"-w", "--wait", "--timeout", "-E", "--conflict-exit-code"}))
    if not rest:
        return [], []
    rest = rest[1:]  # the lock file
    if rest and rest[0].text in ("-c", "--command") and len(rest) > 1:
        return [("flock -c", rest[1].text)], []
    return ([("flock", _join(rest))] if rest else []), []


def _skip(args: list[Word], takes_value: frozenset[str]) -> list[Word]:
    i = 0
    while i < len(args) and args[i].text.startswith("-"):
        if args[i].text == "--":
            return args[i + 1 :]
        i += 2 if args[i].text in takes_value else 1
    return args[i:]


def _option(args: list[Word], short: str, long: str) -> str | None:
    for i, a in enumerate(args):
        t = a.text
        if t == long or (t.startswith("-") and not t.startswith("--") and t.endswith(short[1:])):
            return args[i + 1].text if i + 1 < len(args) else None
        if t.startswith(long + "="):
            return t.split("=", 1)[1]
    return None


def _join(words: list[Word]) -> str:
    """Words back into shell text, as written: their quoting keeps them one word each."""
    return " ".join(w.raw for w in words)


def _unescape_awk(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _PRINTF_ESCAPES.get(m.group(1), m.group(1)), text)


def _decode_escapes(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        body = m.group(1)
        if body[0] in "01234567":
            return chr(int(body.lstrip("0") or "0", 8) & 0xFF) if len(body) <= 4 else m.group(0)
        if body[0] == "x":
            return chr(int(body[1:], 16))
        if body[0] in "uU":
            return chr(int(body[1:], 16))
        return _PRINTF_ESCAPES.get(body, "\\" + body)

    return re.sub(r"\\(0?[0-7]{1,3}|x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", one, text)
