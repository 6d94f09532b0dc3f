"""Makefiles, read as make reads them, far enough to know the shell lines ``make TARGET`` runs.

Variables are expanded (``$(VAR)``, ``${VAR}``; one the Makefile does not set comes from the
environment, so ``$(HOME)`` becomes the shell's ``$HOME``), automatic variables name the target,
recipe prefixes (``@``, ``-``, ``+``) are dropped, prerequisites are followed, and every
``$(shell ...)`` is a command too (make runs it while it reads the file). ``include``, ``$(eval)``
and ``$(call)`` compute the Makefile itself: ``MakeError``, which the gate holds.
"""

from __future__ import annotations

import re

MAX_EXPANSION_DEPTH = 10
MAX_RECIPES = 500
_ASSIGN = re.compile(r"^(?:export\s+|override\s+)*([A-Za-z_][\w.-]*)\s*(::=|:=|\?=|\+=|!=|=)\s*(.*)$")
_RULE = re.compile(r"^([^:=#\t][^:=#]*?)\s*(::?)(?!=)\s*(.*)$")
_SPECIAL = re.compile(r"^\.[A-Z_]+$")
_FUNC = re.compile(r"^(\w[\w-]*)\s+(.*)$", re.S)


class MakeError(ValueError):
    """A Makefile the rules cannot follow."""


class _Makefile:
    def __init__(self, text: str) -> None:
        self.vars: dict[str, str] = {}
        self.rules: dict[str, tuple[list[str], list[str]]] = {}  # target -> (prerequisites, recipe lines)
        self.order: list[str] = []
        self.shell: list[str] = []  # $(shell ...) commands seen anywhere
        self._read(text)

    def _read(self, text: str) -> None:
        text = re.sub(r"\\\n[ \t]*", " ", text)
        current: list[str] = []
        in_define = False
        for line in text.splitlines():
            if in_define:
                in_define = line.strip() != "endef"
                continue
            if line.startswith("\t"):
                body = line[1:].strip()
                if body and not body.startswith("#"):
                    current.append(body)
                continue
            stripped = line.split("#", 1)[0].strip() if "#" in line and "$(" not in line else line.strip()
            if not stripped:
                continue
            word = stripped.split()[0]
            if word in ("include", "-include", "sinclude"):
                raise MakeError(f"it includes {stripped.split(None, 1)[1] if ' ' in stripped else 'another file'}")
            if word.startswith("define"):
                in_define = True
                continue
            if word in ("ifeq", "ifneq", "ifdef", "ifndef", "else", "endif", "vpath", "unexport"):
                continue  # both branches are read: what either could run is checked
            if m := _ASSIGN.match(stripped):
                name, op, value = m.groups()
                if op == "!=":
                    self.shell.append(value)
                self.vars[name] = (self.vars.get(name, "") + " " + value).strip() if op == "+=" else value
                current = []
                continue
            if m := _RULE.match(stripped):
                targets, _, rest = m.groups()
                prereqs, _, inline = rest.partition(";")
                current = [inline.strip()] if inline.strip() else []
                for target in targets.split():
                    if _SPECIAL.match(target):
                        continue
                    old_prereqs, old_lines = self.rules.get(target, ([], []))
                    self.rules[target] = (old_prereqs + prereqs.split(), old_lines)
                    if target not in self.order:
                        self.order.append(target)
                    current = self.rules[target][1]
                    if inline.strip():
                        current.append(inline.strip())
                continue
            if "$(" in stripped and ("eval" in stripped or "call" in stripped):
                raise MakeError("it computes its own rules ($(eval)/$(call))")

    def expand(self, text: str, target: str = "", prereqs: tuple[str, ...] = (), depth: int = 0) -> str:
        if depth > MAX_EXPANSION_DEPTH:
            raise MakeError("its variables expand too deeply")
        out, i = [], 0
        while i < len(text):
            c = text[i]
            if c != "$" or i + 1 >= len(text):
                out.append(c)
                i += 1
                continue
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
            elif nxt in "({":
                close = _matching(text, i + 1)
                out.append(self._reference(text[i + 2 : close], target, prereqs, depth))
                i = close + 1
            else:
                out.append(self._automatic(nxt, target, prereqs) or self._variable(nxt, target, prereqs, depth))
                i += 2
        return "".join(out)

    def _reference(self, body: str, target: str, prereqs: tuple[str, ...], depth: int) -> str:
        if m := _FUNC.match(body):
            func, args = m.groups()
            if func == "shell":
                command = self.expand(args, target, prereqs, depth + 1)
                self.shell.append(command)
                return "$(" + command + ")"
            if func in ("eval", "call", "value"):
                raise MakeError(f"it computes what it runs ($({func} ...))")
            if func in ("wildcard", "strip", "sort", "firstword", "abspath", "realpath"):
                return self.expand(args, target, prereqs, depth + 1)
            return "${MAKE_FUNCTION_RESULT}"  # known only at run time: the rules treat it so
        if len(body) in (1, 2) and (auto := self._automatic(body[0], target, prereqs)):
            return auto
        return self._variable(body, target, prereqs, depth)

    def _variable(self, name: str, target: str, prereqs: tuple[str, ...], depth: int) -> str:
        if name == "MAKE":
            return "make"
        if name in self.vars:
            return self.expand(self.vars[name], target, prereqs, depth + 1)
        return "${" + name + "}"  # not set here: make takes it from the environment

    @staticmethod
    def _automatic(c: str, target: str, prereqs: tuple[str, ...]) -> str | None:
        return {"@": target, "<": prereqs[0] if prereqs else "", "^": " ".join(prereqs),
                "+": " ".join(prereqs), "?": " ".join(prereqs), "*": target.rsplit(".", 1)[0]}.get(c)


def _matching(text: str, open_at: int) -> int:
    opener = text[open_at]
    closer = ")" if opener == "(" else "}"
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == opener:
            depth += 1
        elif text[i] == closer:
            depth -= 1
            if depth == 0:
                return i
    raise MakeError("a variable reference is never closed")


def recipe_commands(text: str, targets: list[str]) -> list[tuple[str, str]]:
    """(target, shell line) for what ``make TARGETS`` runs (the first target when none is named),
    prerequisites first, then the ``$(shell ...)`` commands make runs while reading the file."""
    mk = _Makefile(text)
    wanted = targets or [t for t in mk.order if "%" not in t][:1]
    seen: set[str] = set()
    out: list[tuple[str, str]] = []

    def visit(target: str) -> None:
        if target in seen or target not in mk.rules or len(out) > MAX_RECIPES:
            return
        seen.add(target)
        prereqs, lines = mk.rules[target]
        expanded = tuple(mk.expand(p) for p in prereqs)
        for p in expanded:
            for name in p.split():
                visit(name)
        for line in lines:
            command = mk.expand(line, target, expanded).lstrip("@-+ \t")
            if command:
                out.append((target, command))

    for target in wanted:
        visit(target)
    for pattern in (t for t in mk.order if "%" in t):  # pattern rules run for whatever needs them
        visit(pattern)
    out += [("$(shell)", c) for c in mk.shell]
    return out
