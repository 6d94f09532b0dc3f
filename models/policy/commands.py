"""What a command line really runs: every simple command, seen through wrappers and nested shells.

``sudo env FOO=1 timeout 5 nice bash -c "rm -rf /"`` runs ``rm -rf /``. This module undoes such
prefixes (``sudo``, ``env``, ``timeout N``, ``nohup``, ``nice``, ``xargs``, ``command``, ``exec``...),
parses the code handed to ``bash -c``, ``eval``, ``su -c``, ``watch``, ``find -exec``, command
and process substitutions, here-documents fed to a shell, shell scripts the step runs, and npm
scripts, and records for each command the directories it may run in (after ``cd``).

The result is a flat list of ``Invocation``s the rules check one by one, plus the parsed scripts
(for rules about loops, functions and pipelines) and problems: code that could not be read.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from models.policy.lexer import ShellSyntaxError, Word, find_substitutions
from models.policy.shell import Script, SimpleCommand, parse
from models.policy.words import SHELLS, command_name, is_python, parse_duration

MAX_DEPTH = 8
# Loads a shell script or package.json the step runs: (path as written, cwd) -> its text, or None.
Loader = Callable[[str, str], str | None]

# wrapper -> options that take a value (the wrapped command follows the options)
_WRAPPERS: dict[str, frozenset[str]] = {
    "sudo": frozenset("-u -g -C -D -h -p -r -t -U -T -R --user --group --host --prompt --chdir".split()),
    "doas": frozenset({"-u", "-C"}),
    "env": frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"}),
    "nohup": frozenset(), "setsid": frozenset(), "time": frozenset(), "builtin": frozenset(),
    "command": frozenset(), "exec": frozenset({"-a"}), "unbuffer": frozenset(), "caffeinate": frozenset(),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "-p", "--class", "--classdata"}),
    "stdbuf": frozenset({"-i", "-o", "-e", "--input", "--output", "--error"}),
    "timeout": frozenset({"-s", "-k", "--signal", "--kill-after"}),
    "xargs": frozenset("-I -n -P -L -l -d -E -e -s -a --max-args --max-procs --max-lines --delimiter "
                       "--arg-file --replace --eof --max-chars".split()),
    "chroot": frozenset({"--userspec", "--groups"}),
    "busybox": frozenset(),
}
_INLINE_FLAGS = {"node": {"-e", "--eval", "-p", "--print"}, "perl": {"-e", "-E"}, "ruby": {"-e"},
                 "php": {"-r"}, "bun": {"-e", "--eval"}, "deno": {"eval"}, "Rscript": {"-e"}, "lua": {"-e"}}
_JS_RUNNERS = frozenset({"npm", "pnpm", "yarn", "bun"})


@dataclass(frozen=True)
class Problem:
    point: int
    reason: str


@dataclass
class Invocation:
    name: str  # the command's name, without directory: "rm" for /bin/rm; "" for a redirection alone
    argv0: Word | None
    args: list[Word]
    cmd: SimpleCommand
    wrappers: tuple[str, ...] = ()
    timeout_s: float | None = None  # the tightest `timeout N` around it (seconds)
    via: str = ""  # where it was found, e.g. "bash -c" or "$(...)"
    cwds: frozenset[str | None] = frozenset({"."})  # directories it may run in; None: unknown

    @property
    def texts(self) -> list[str]:
        return [a.text for a in self.args]

    @property
    def normalized(self) -> str:
        """The form project allow/deny rules match: name and arguments, quotes and wrappers removed."""
        return " ".join([self.name, *self.texts]).strip()


@dataclass
class ScriptInfo:
    script: Script
    via: str
    invocations: list[Invocation] = field(default_factory=list)


@dataclass
class Analysis:
    invocations: list[Invocation] = field(default_factory=list)
    scripts: list[ScriptInfo] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    inline_code: list[tuple[str, str, Invocation]] = field(default_factory=list)  # (language, code, where)


def analyze(src: str, load: Loader | None = None) -> Analysis:
    out = Analysis()
    _Walker(out, load).walk(src, via="", depth=0, cwds=frozenset({"."}), timeout=None)
    return out


class _Walker:
    def __init__(self, out: Analysis, load: Loader | None) -> None:
        self.out = out
        self.load = load

    def walk(self, src: str, via: str, depth: int, cwds: frozenset[str | None], timeout: float | None) -> None:
        if depth > MAX_DEPTH:
            self.out.problems.append(Problem(7, f"commands nested more than {MAX_DEPTH} levels deep ({via})"))
            return
        try:
            script = parse(src)
        except ShellSyntaxError as exc:
            where = f" inside {via}" if via else ""
            self.out.problems.append(Problem(7, f"could not parse the command{where}: {exc}"))
            return
        info = ScriptInfo(script, via)
        self.out.scripts.append(info)
        state: dict[tuple[int, ...], frozenset[str | None]] = {(): cwds}
        for cmd in script.commands:
            here = _scoped(state, cmd.subshells)
            for word in [*cmd.words, *cmd.assigns, *(r.target for r in cmd.redirects if r.target)]:
                for sub in word.subs:
                    self.walk(sub, _via(via, "$(...)"), depth + 1, here, timeout)
            for r in cmd.redirects:
                if r.heredoc and r.heredoc_expands:
                    for sub in find_substitutions(r.heredoc, respect_single_quotes=False):
                        self.walk(sub, _via(via, "a here-document"), depth + 1, here, timeout)
            new = self._unwrap(cmd, list(cmd.words), info, via, depth, here, timeout)
            if cd := next((i for i in new if i.name in ("cd", "pushd", "popd")), None):
                if not (cmd.pipe_in or cmd.pipe_out) and not cd.via.endswith(("-c", "eval")):
                    moved = frozenset(_cd_target(c, cd) for c in here)
                    replace = cmd.joined_by == "&&" and not cmd.conditional
                    state[cmd.subshells] = moved if replace else here | moved

    # ---- wrappers ------------------------------------------------------------------------------
    def _unwrap(
        self, cmd: SimpleCommand, words: list[Word], info: ScriptInfo, via: str, depth: int,
        cwds: frozenset[str | None], timeout: float | None,
    ) -> list[Invocation]:
        wrappers: list[str] = []
        made: list[Invocation] = []
        while True:
            if not words:
                made.append(Invocation("", None, [], cmd, tuple(wrappers), timeout, via, cwds))
                break
            w0 = words[0]
            name = command_name(w0)
            if w0.text.startswith("((") and w0.dynamic:
                break  # arithmetic: its substitutions were walked already
            if w0.dynamic or w0.glob or w0.brace:
                self.out.problems.append(
                    Problem(7, f"the command name {w0.raw!r} is only known at run time, so it cannot be checked")
                )
                made.append(Invocation("", w0, words[1:], cmd, tuple(wrappers), timeout, via, cwds))
                break
            if name in _WRAPPERS and not (name == "command" and _has(words, "-v", "-V")):
                inner, timeout = _strip_wrapper(name, words[1:], timeout)
                if name == "env" and (split := _option_value(words[1:], "-S", "--split-string")):
                    self.walk(split, _via(via, "env -S"), depth + 1, cwds, timeout)
                made.append(Invocation(name, w0, words[1:], cmd, tuple(wrappers), timeout, via, cwds))
                if name == "xargs" and not inner:
                    inner = [Word("echo", "echo")]
                if not inner:
                    break
                wrappers.append(name)
                words = inner
                continue
            inv = Invocation(name, w0, words[1:], cmd, tuple(wrappers), timeout, via, cwds)
            made.append(inv)
            self._nested(inv, depth, timeout)
            break
        info.invocations.extend(made)
        self.out.invocations.extend(made)
        return made

    # ---- code handed to another interpreter ----------------------------------------------------
    def _nested(self, inv: Invocation, depth: int, timeout: float | None) -> None:
        name, texts = inv.name, inv.texts
        via = inv.via
        if name in SHELLS or name == "su":
            code = _shell_code(inv)
            if code is not None:
                self._run_code(code, inv, f"{name} -c", depth, timeout)
            elif name in SHELLS and (script := _first_operand(inv.args)) is not None:
                self._run_script(script.text, inv, depth, timeout)
            else:
                for r in inv.cmd.redirects:
                    if r.heredoc is not None:
                        self.walk(r.heredoc, _via(via, f"{name} <<{r.delimiter}"), depth + 1, inv.cwds, timeout)
        elif name == "eval" and inv.args:
            joined = Word(" ".join(a.raw for a in inv.args), " ".join(texts), dynamic=any(a.dynamic for a in inv.args),
                          subs=tuple(s for a in inv.args for s in a.subs))
            self._run_code(joined, inv, "eval", depth, timeout)
        elif name == "watch":
            rest = _skip_options(inv.args, frozenset({"-n", "--interval", "-d", "--differences"}))
            if rest:
                self.walk(" ".join(a.text for a in rest), _via(via, "watch"), depth + 1, inv.cwds, timeout)
        elif name in ("find", "fd"):
            for inner in _exec_commands(inv.args):
                self._unwrap(inv.cmd, inner, self.out.scripts[-1], _via(via, f"{name} -exec"), depth + 1,
                             inv.cwds, timeout)
        elif name in ("source", ".") and inv.args:
            self._run_script(inv.args[0].text, inv, depth, timeout)
        elif name.endswith((".sh", ".bash")) and inv.argv0 is not None:
            self._run_script(inv.argv0.text, inv, depth, timeout)
        elif name in _JS_RUNNERS:
            self._package_script(inv, depth, timeout)
        self._inline(inv)

    def _run_code(self, code: Word, inv: Invocation, label: str, depth: int, timeout: float | None) -> None:
        via = _via(inv.via, label)
        if code.text.startswith("$") and code.dynamic or (code.subs and code.text.strip() == code.raw.strip('"')):
            # the code itself comes from a variable or a command's output: nothing to check
            fetched = any(_fetches(sub) for sub in code.subs)
            point = 4 if fetched else 7
            what = "downloaded" if fetched else "only known at run time"
            self.out.problems.append(Problem(point, f"{label} runs code that is {what}: {code.raw[:80]}"))
            return
        self.walk(code.text, via, depth + 1, inv.cwds, timeout)

    def _run_script(self, path: str, inv: Invocation, depth: int, timeout: float | None) -> None:
        if self.load is None or path in ("-", "/dev/stdin") or path.startswith(("<(", "/dev/fd")):
            return
        for cwd in inv.cwds:
            text = self.load(path, cwd or ".")
            if text is not None:
                self.walk(text, _via(inv.via, path), depth + 1, inv.cwds, timeout)
                return

    def _package_script(self, inv: Invocation, depth: int, timeout: float | None) -> None:
        texts = [t for t in inv.texts if not t.startswith("-")]
        if not texts or self.load is None:
            return
        target = texts[1] if texts[0] in ("run", "run-script") and len(texts) > 1 else texts[0]
        raw = self.load("package.json", next(iter(inv.cwds)) or ".")
        try:
            scripts = json.loads(raw).get("scripts", {}) if raw else {}
        except (ValueError, AttributeError):
            return
        for key in (f"pre{target}", target, f"post{target}"):
            body = scripts.get(key) if isinstance(scripts, dict) else None
            if isinstance(body, str):
                self.walk(body, _via(inv.via, f"{inv.name} script {key!r}"), depth + 1, inv.cwds, timeout)

    def _inline(self, inv: Invocation) -> None:
        """Code run by python -c, node -e, perl -e ... (and here-documents fed to them)."""
        lang = "python" if is_python(inv.name) else inv.name
        flags = {"-c"} if lang == "python" else _INLINE_FLAGS.get(inv.name, set())
        for flag, value in zip(inv.args, inv.args[1:], strict=False):
            if flag.text in flags or (lang == "python" and re.fullmatch(r"-[A-Za-z]*c", flag.text)):
                self.out.inline_code.append((lang, value.text, inv))
                return
        if lang == "python" or inv.name in _INLINE_FLAGS:
            for r in inv.cmd.redirects:
                if r.heredoc is not None or r.op == "<<<":
                    self.out.inline_code.append((lang, r.heredoc or (r.target.text if r.target else ""), inv))


# ---- helpers ---------------------------------------------------------------------------------------
def _via(outer: str, inner: str) -> str:
    return f"{outer} > {inner}" if outer else inner


def _scoped(state: dict[tuple[int, ...], frozenset[str | None]], key: tuple[int, ...]) -> frozenset[str | None]:
    """The directories a command in subshell ``key`` may run in: a subshell starts where its parent is."""
    if key not in state:
        state[key] = _scoped(state, key[:-1])
    return state[key]


def _cd_target(cwd: str | None, cd: Invocation) -> str | None:
    operands = [a for a in cd.args if not a.text.startswith("-") or a.text == "-"]
    if cd.name == "popd":
        return "."
    if not operands:
        return "~"
    target = operands[0]
    if target.dynamic or target.text == "-" or cwd is None:
        return None
    if target.tilde:
        return "~"
    return os.path.normpath(os.path.join(cwd, target.text))


def _has(words: list[Word], *flags: str) -> bool:
    return any(w.text in flags for w in words[1:])


def _option_value(words: list[Word], *names: str) -> str | None:
    for i, w in enumerate(words):
        if w.text in names and i + 1 < len(words):
            return words[i + 1].text
        for n in names:
            if n.startswith("--") and w.text.startswith(n + "="):
                return w.text.split("=", 1)[1]
    return None


def _skip_options(words: list[Word], takes_value: frozenset[str]) -> list[Word]:
    i = 0
    while i < len(words) and words[i].text.startswith("-") and words[i].text != "-":
        if words[i].text == "--":
            return words[i + 1 :]
        i += 2 if words[i].text in takes_value else 1
    return words[i:]


def _strip_wrapper(name: str, rest: list[Word], timeout: float | None) -> tuple[list[Word], float | None]:
    if name == "env":
        rest = _skip_options(rest, _WRAPPERS["env"])
        while rest and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", rest[0].text):
            rest = rest[1:]
        return rest, timeout
    if name == "nice" and rest and re.fullmatch(r"-\d+", rest[0].text):
        rest = rest[1:]
    rest = _skip_options(rest, _WRAPPERS[name])
    if name == "timeout" and rest:
        seconds = parse_duration(rest[0].text)
        return rest[1:], seconds if timeout is None or seconds is None else min(timeout, seconds)
    if name == "chroot" and rest:
        rest = rest[1:]
    return rest, timeout


def _shell_code(inv: Invocation) -> Word | None:
    """The string after ``-c`` (``bash -lc 'x'``, ``bash -o pipefail -c 'x'``, ``su root -c 'x'``)."""
    args, i = inv.args, 0
    while i < len(args):
        t = args[i].text
        if t in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            i += 2
            continue
        if (t.startswith("-") and not t.startswith("--") and "c" in t[1:]) or t == "--command":
            return args[i + 1] if i + 1 < len(args) else None
        if not t.startswith(("-", "+")) and inv.name != "su":
            return None
        i += 1
    return None


def _first_operand(args: list[Word]) -> Word | None:
    rest = _skip_options(args, frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"}))
    return rest[0] if rest else None


def _exec_commands(args: list[Word]) -> list[list[Word]]:
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


def _fetches(src: str) -> bool:
    return bool(re.search(r"\b(curl|wget|fetch|aria2c|http|https|nc|invoke-webrequest)\b", src))
