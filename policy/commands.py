"""What a command line really runs: every simple command, seen through wrappers and nested shells.

``sudo env FOO=1 timeout 5 nice bash -c "rm -rf /"`` runs ``rm -rf /``. The walker undoes such
prefixes, parses the code handed to ``bash -c``, ``eval``, ``su -c``, ``watch``, ``trap``,
``alias``, ``find -exec``, command and process substitutions, here-documents and here-strings fed
to a shell, ``echo ... | sh``, shell scripts the step runs and npm scripts; and it records for each
command the directories it may run in (after ``cd``, scoped to subshells).

The result (``Analysis``) is a flat list of ``Invocation``s the rules check one by one, the parsed
scripts (for rules about loops, functions and pipelines), the inline code of ``python -c`` and
friends, and the problems: code that could not be read, which always blocks.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping

from policy.interpreters import (
    WRAPPERS,
    exec_commands,
    inline_code,
    option_value,
    script_dir_target,
    script_operand,
    shell_code,
    skip_options,
    stdin_script,
    strip_wrapper,
)
from policy.invocation import Analysis, Invocation, Problem, ScriptInfo
from policy.parsers.make import MakeError, recipe_commands
from policy.parsers.programs import embedded, printed_text
from policy.parsers.pyfiles import python_files_run
from policy.parsers.shell import SimpleCommand, parse
from policy.tokens import ShellSyntaxError, Word
from policy.words import FETCHERS, SHELLS, command_name, is_python

MAX_DEPTH = 8
MAX_CHARS = 100_000  # longer command lines are not plans a person could review either
# Loads a file a step runs (a script, package.json): (path as written, cwd) -> its text, or None.
Loader = Callable[[str, str], str | None]
Cwds = frozenset[str | None]
_JS_RUNNERS = frozenset({"npm", "pnpm", "yarn", "bun"})


def analyze(src: str, load: Loader | None = None, plan_files: Mapping[str, str] | None = None) -> Analysis:
    """``plan_files``: the files earlier steps of the plan wrote (path from the root -> text); a
    Python file among them that this command runs is read too (``python x.py``, ``python -m``,
    ``pytest`` and its conftest.py and test files, ``setup.py``, ``manage.py``)."""
    out = Analysis()
    _Walker(out, load, plan_files or {}).walk(src, _Where("", 0, frozenset({"."}), None, None))
    return out


class _Where:
    """Where a piece of shell runs: how it was reached, how deep, from which directories, under
    which timeout, and (for a script file) the script's own directory."""

    def __init__(self, via: str, depth: int, cwds: Cwds, timeout: float | None, script_dir: str | None) -> None:
        self.via, self.depth, self.cwds, self.timeout, self.script_dir = via, depth, cwds, timeout, script_dir

    def inner(self, label: str, cwds: Cwds, timeout: float | None, script_dir: str | None = None) -> _Where:
        via = f"{self.via} > {label}" if self.via else label
        return _Where(via, self.depth + 1, cwds, timeout, script_dir)


class _Walker:
    def __init__(self, out: Analysis, load: Loader | None, plan_files: Mapping[str, str]) -> None:
        self.out = out
        self.load = load
        self.plan_files = plan_files
        # files this command line itself writes with a here-document or echo: cat > x.sh <<EOF ... sh x.sh
        self.written: dict[str, str] = {}

    def walk(self, src: str, where: _Where) -> None:
        if where.depth > MAX_DEPTH:
            self.out.problems.append(Problem(7, f"commands nested more than {MAX_DEPTH} levels deep ({where.via})"))
            return
        inside = f" inside {where.via}" if where.via else ""
        if len(src) > MAX_CHARS:
            self.out.problems.append(Problem(7, f"the command{inside} is too long to check ({len(src)} characters)"))
            return
        try:
            script = parse(src)
        except ShellSyntaxError as exc:
            self.out.problems.append(Problem(7, f"could not parse the command{inside}: {exc}"))
            return
        except RecursionError:
            self.out.problems.append(Problem(7, f"could not parse the command{inside}: nested too deeply"))
            return
        info = ScriptInfo(script, where.via)
        self.out.scripts.append(info)
        state: dict[tuple[int, ...], Cwds] = {(): where.cwds}
        for cmd in script.commands:
            here = _scoped(state, cmd.subshells)
            at = _Where(where.via, where.depth, here, where.timeout, where.script_dir)
            for word in [*cmd.words, *cmd.assigns, *(r.target for r in cmd.redirects if r.target)]:
                for sub in word.subs:
                    self.walk(sub, at.inner("$(...)", here, where.timeout))
            for r in cmd.redirects:
                for sub in r.heredoc_subs:
                    self.walk(sub, at.inner("a here-document", here, where.timeout))
            made = self._unwrap(cmd, list(cmd.words), info, at)
            self._remember_writes(made, here)
            cd = next((i for i in made if i.name in ("cd", "pushd", "popd")), None)
            if cd is not None and not (cmd.pipe_in or cmd.pipe_out):
                moved = frozenset({cd.cd_dir}) if cd.cd_dir is not None else frozenset(_cd(c, cd) for c in here)
                replace = cmd.joined_by == "&&" and not cmd.conditional
                state[cmd.subshells] = moved if replace else here | moved

    def _unwrap(self, cmd: SimpleCommand, words: list[Word], info: ScriptInfo, at: _Where) -> list[Invocation]:
        wrappers: list[str] = []
        made: list[Invocation] = []
        timeout = at.timeout
        while True:
            if not words:
                made.append(Invocation("", None, [], cmd, tuple(wrappers), timeout, at.via, at.cwds))
                break
            w0, name = words[0], command_name(words[0])
            if w0.text.startswith("((") and w0.dynamic:
                break  # arithmetic: its substitutions were walked already
            if w0.dynamic or (w0.glob and w0.text not in ("[", "[[")) or w0.brace:
                self.out.problems.append(
                    Problem(
                        7, f"the command name {w0.raw!r} is only known at run time, so it cannot be checked", hold=True
                    )
                )
                made.append(Invocation("", w0, words[1:], cmd, tuple(wrappers), timeout, at.via, at.cwds))
                break
            if name in WRAPPERS:
                inner, timeout = strip_wrapper(name, words[1:], timeout)
                own = words[1 : len(words) - len(inner)]
                if name == "env" and (split := option_value(own, "-S", "--split-string")):
                    self.walk(split, at.inner("env -S", at.cwds, timeout))
                if name == "xargs" and not inner:
                    inner = [Word("echo", "echo")]
                wrapper = Invocation(name, w0, own, cmd, tuple(wrappers), timeout, at.via, at.cwds, wraps=bool(inner))
                made.append(wrapper)
                if not inner:
                    break
                wrappers.append(name)
                words = inner
                continue
            inv = Invocation(name, w0, words[1:], cmd, tuple(wrappers), timeout, at.via, at.cwds)
            if name in ("cd", "pushd") and inv.args:
                inv.cd_dir = script_dir_target(inv.args[-1].text, at.script_dir)
            made.append(inv)
            info.invocations.extend(made)
            self.out.invocations.extend(made)
            self._nested(inv, info, _Where(at.via, at.depth, at.cwds, timeout, at.script_dir))
            return made
        info.invocations.extend(made)
        self.out.invocations.extend(made)
        return made

    # ---- code handed to another interpreter ----------------------------------------------------
    def _nested(self, inv: Invocation, info: ScriptInfo, at: _Where) -> None:
        name = inv.name
        if name in SHELLS or name == "su":
            if (code := shell_code(inv)) is not None:
                self._run_code(code, inv, f"{name} -c", at)
            elif (script := script_operand(inv)) is not None and name in SHELLS:
                self._run_file(script.text, inv, at)
        elif name == "eval" and inv.args:
            joined = Word(" ".join(a.raw for a in inv.args), " ".join(inv.texts),
                          dynamic=any(a.dynamic for a in inv.args), subs=tuple(s for a in inv.args for s in a.subs))
            self._run_code(joined, inv, "eval", at)
        elif name in ("watch", "trap"):
            rest = skip_options(inv.args, frozenset({"-n", "--interval"}))
            if rest and rest[0].text not in ("-", "-l", "-p"):
                text = " ".join(a.text for a in rest) if name == "watch" else rest[0].text
                self.walk(text, at.inner(name, at.cwds, at.timeout))
        elif name == "alias":
            for a in inv.args:
                if "=" in a.text:
                    self.walk(a.text.split("=", 1)[1], at.inner("alias", at.cwds, at.timeout))
        elif name in ("find", "fd"):
            for words in exec_commands(inv.args):
                self._unwrap(inv.cmd, words, info, at.inner(f"{name} -exec", at.cwds, at.timeout))
        elif name in ("source", ".") and inv.args and not stdin_script(inv):
            self._run_file(inv.args[0].text, inv, at)
        elif name.endswith((".sh", ".bash")) and inv.argv0 is not None:
            self._run_file(inv.argv0.text, inv, at)
        elif name in _JS_RUNNERS:
            self._package_script(inv, at)
        if stdin_script(inv):
            self._stdin_code(inv, info, at)
        elif (code_text := inline_code(inv)) is not None:
            self.out.inline_code.append(("python" if is_python(name) else name, code_text, inv))
        commands, unreadable = embedded(inv)
        for label, text in commands:
            self.walk(text, at.inner(label, at.cwds, at.timeout))
        for reason in unreadable:
            self.out.problems.append(Problem(7, reason, hold=True))
        if name == "make" or name == "gmake":
            self._makefile(inv, at)
        if self.plan_files:
            for path in python_files_run(inv, self.plan_files):
                self.out.python_files.append((path, self.plan_files[path], inv))

    def _stdin_code(self, inv: Invocation, info: ScriptInfo, at: _Where) -> None:
        """An interpreter reading its program from stdin: a here-document, a file, or a pipe."""
        shell = inv.name in SHELLS or inv.name in ("source", ".")
        lang = "python" if is_python(inv.name) else inv.name
        for r in inv.cmd.redirects:
            text = r.heredoc if r.heredoc is not None else (r.target.text if r.op == "<<<" and r.target else None)
            if text is not None:
                self._code(text, shell, lang, inv, at, f"{inv.name} {r.op}{r.delimiter}")
            elif r.op == "<" and r.target is not None and self.load is not None:
                loaded = self.load(r.target.text, next(iter(inv.cwds)) or ".")
                if loaded is not None:
                    self._code(loaded, shell, lang, inv, at, r.target.text)
        if not inv.cmd.pipe_in:
            return
        upstream = [i for i in info.invocations if i.cmd.pipeline == inv.cmd.pipeline
                    and i.cmd.index < inv.cmd.index and not i.wraps]
        if any(i.name in FETCHERS for i in upstream):
            return  # curl | sh: point 4 reports it
        if upstream and all(i.name in ("echo", "printf") for i in upstream):
            for i in upstream:
                self._code(printed_text(i), shell, lang, inv, at, f"{i.name} | {inv.name}")
        else:
            source = f"`{upstream[0].normalized[:40]}`" if upstream else "another command"
            self.out.problems.append(
                Problem(7, f"`{inv.name}` runs code piped from {source}, which cannot be checked", hold=True)
            )

    def _code(self, text: str, shell: bool, lang: str, inv: Invocation, at: _Where, label: str) -> None:
        if shell:
            self.walk(text, at.inner(label, inv.cwds, at.timeout))
        else:
            self.out.inline_code.append((lang, text, inv))

    def _run_code(self, code: Word, inv: Invocation, label: str, at: _Where) -> None:
        if code.dynamic and code.text.lstrip().startswith(("$", "`")):
            # the code itself comes from a variable or a command's output: nothing to check
            fetched = any(re.search(r"\b(curl|wget|fetch|aria2c|http|https)\b", s) for s in code.subs)
            point, what = (4, "downloaded") if fetched else (7, "only known at run time")
            problem = Problem(point, f"{label} runs code that is {what}: {code.raw[:80]}", hold=not fetched)
            self.out.problems.append(problem)
            return
        self.walk(code.text, at.inner(label, inv.cwds, at.timeout))

    def _run_file(self, path: str, inv: Invocation, at: _Where) -> None:
        """A shell script the step runs is checked like the step itself; one the rules cannot
        read (not in the workspace, not written by the plan) blocks: unknown means blocked."""
        if self.load is None or path in ("-", "/dev/stdin") or path.startswith(("<(", "/dev/fd")):
            return
        for cwd in inv.cwds:
            full = os.path.normpath(os.path.join(cwd or ".", path))
            text = self.written.get(full)
            if text is None:
                text = self.load(path, cwd or ".")
            if text is not None:
                script_dir = os.path.dirname(full) or "."
                self.walk(text, at.inner(path, inv.cwds, at.timeout, script_dir))
                return
        if not path.endswith(("/activate", "/activate.sh")):  # a virtualenv made by an earlier step
            self.out.problems.append(Problem(7, f"runs the script {path!r}, which the rules cannot read", hold=True))

    def _remember_writes(self, made: list[Invocation], cwds: Cwds) -> None:
        inv = made[-1] if made else None
        if inv is None or inv.name not in ("cat", "tee", "echo", "printf"):
            return
        if inv.name in ("echo", "printf"):
            body = printed_text(inv)
        else:
            fed = [r.heredoc if r.heredoc is not None else (r.target.text if r.target else "")
                   for r in inv.cmd.redirects if r.op in ("<<", "<<-", "<<<")]
            if not fed:
                return
            body = fed[0]
        targets = [r.target.text for r in inv.cmd.redirects if r.target and r.op in (">", ">>", ">|")]
        targets += [a.text for a in inv.args if inv.name == "tee" and not a.text.startswith("-")]
        for target in targets:
            for cwd in cwds:
                self.written[os.path.normpath(os.path.join(cwd or ".", target))] = body

    def _makefile(self, inv: Invocation, at: _Where) -> None:
        """``make [TARGET...]``: the recipes it runs, read from the Makefile as the plan leaves it."""
        if self.load is None:
            return
        texts = inv.texts
        directory = option_value(inv.args, "-C", "--directory") or "."
        names = [option_value(inv.args, "-f", "--file") or n for n in ("GNUmakefile", "makefile", "Makefile")]
        cwd = os.path.normpath(os.path.join(next(iter(inv.cwds)) or ".", directory))
        text = next((t for n in dict.fromkeys(names) if (t := self.load(n, cwd)) is not None), None)
        if text is None:
            return  # no Makefile: make fails, nothing runs
        targets = [t for t in texts if not t.startswith("-") and "=" not in t and t != directory
                   and t not in names]
        try:
            recipes = recipe_commands(text, targets)
        except MakeError as exc:
            self.out.problems.append(Problem(7, f"`make` reads a Makefile the rules cannot follow: {exc}", hold=True))
            return
        for target, line in recipes:
            self.walk(line, at.inner(f"make {target}", frozenset({cwd}), at.timeout))

    def _package_script(self, inv: Invocation, at: _Where) -> None:
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
                self.walk(body, at.inner(f"{inv.name} script {key!r}", inv.cwds, at.timeout))


def _scoped(state: dict[tuple[int, ...], Cwds], key: tuple[int, ...]) -> Cwds:
    """The directories a command in subshell ``key`` may run in: a subshell starts where its parent is."""
    if key not in state:
        state[key] = _scoped(state, key[:-1])
    return state[key]


def _cd(cwd: str | None, cd: Invocation) -> str | None:
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
