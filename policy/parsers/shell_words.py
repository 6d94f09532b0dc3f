"""Shell words, read from the tree the way bash unquotes them.

``r'm'``, ``"rm"``, ``\\rm`` and ``$'\\x72m'`` are all ``rm``; what is only known at run time
(``$VAR``, ``$(...)``, globs, brace expansion, a leading ``~``) is marked on the ``Word``, and the
sources of command and process substitutions are kept so that the walker checks them too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tree_sitter import Node

from policy.tokens import Word

_ANSI_C = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "v": "\v"}
_LITERAL = frozenset({"word", "number", "variable_name", "extglob_pattern", "regex", "test_operator",
                      "file_descriptor", "special_variable_name", "heredoc_start"})


class WordReader:
    """Reads the words of one parsed source (``data``: the bytes the tree was parsed from)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def text(self, node: Node) -> str:
        return self.data[node.start_byte : node.end_byte].decode("utf-8", "surrogateescape")

    def word(self, node: Node) -> Word:
        b = _WordBuilder()
        self._unit(node, b)
        return Word(
            raw=self.text(node), text="".join(b.text), dynamic=b.dynamic, glob=b.glob, brace=b.brace,
            tilde=b.tilde, subs=tuple(b.subs), params=tuple(b.params),
        )

    def subs_in(self, node: Node | None, stop: Node | None = None) -> list[str]:
        """Sources of the command substitutions anywhere below ``node`` (not below ``stop``)."""
        if node is None:
            return []
        found: list[str] = []
        stack = [node]
        while stack:
            n = stack.pop()
            if n == stop:
                continue
            if n.type == "command_substitution":
                found.append(_substitution_source(self.text(n)))
                continue
            if n.type == "process_substitution":
                found.append(self.text(n)[2:-1])
                continue
            stack.extend(reversed(n.children))
        return found

    def _unit(self, node: Node, b: _WordBuilder) -> None:
        kind, raw = node.type, self.text(node)
        if kind in _LITERAL:
            _literal(raw, b)
        elif kind == "raw_string":
            b.add(raw[1:-1])
        elif kind == "ansi_c_string":
            b.add(_ansi_c(raw[2:-1]))
        elif kind in ("string", "translated_string"):
            self._quoted(node, b)
        elif kind == "simple_expansion":
            b.dynamic = True
            b.add(raw)
            b.params.append(raw[1:])
        elif kind == "expansion":
            b.dynamic = True
            b.add(raw)
            if m := re.match(r"[#!]?([A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])", raw[2:]):
                b.params.append(m.group(1))
            b.subs.extend(self.subs_in(node))
        elif kind == "command_substitution":
            b.dynamic = True
            b.add(raw)
            b.subs.append(_substitution_source(raw))
        elif kind == "process_substitution":
            b.dynamic = True
            b.add(raw)
            b.subs.append(raw[2:-1])
        elif kind == "arithmetic_expansion":
            b.dynamic = True
            b.add(raw)
            b.subs.extend(self.subs_in(node))
        elif kind == "brace_expression":
            b.brace = True
            b.add(raw)
        elif kind in ("concatenation", "variable_assignment"):
            self._pieces(node, b, node.start_byte, node.end_byte)
        elif kind == "array":
            b.add(raw)
            b.subs.extend(self.subs_in(node))
            b.dynamic = b.dynamic or bool(b.subs)
        else:  # anything else is kept as written and treated as known only at run time
            b.dynamic = True
            b.add(raw)
            b.subs.extend(self.subs_in(node))

    def _pieces(self, node: Node, b: _WordBuilder, start: int, end: int, quoted: bool = False) -> None:
        """The children of a word, with the text between them (``=`` in FOO=1) as literal text."""
        pos = start
        for child in node.children:
            if child.start_byte > pos:
                gap = self.data[pos : child.start_byte].decode("utf-8", "surrogateescape")
                b.add(_unescape_double(gap)) if quoted else _literal(gap, b)
            if child.start_byte >= pos and child.end_byte <= end:
                if quoted and child.type == "string_content":
                    b.add(_unescape_double(self.text(child)))
                elif quoted and not child.is_named:
                    pass  # the quotes themselves
                else:
                    self._unit(child, b) if child.is_named else _literal(self.text(child), b)
            pos = max(pos, child.end_byte)
        if end > pos:
            tail = self.data[pos:end].decode("utf-8", "surrogateescape")
            b.add(_unescape_double(tail)) if quoted else _literal(tail, b)

    def _quoted(self, node: Node, b: _WordBuilder) -> None:
        first = node.children[0] if node.children else None
        opening = first.end_byte if first is not None and not first.is_named else node.start_byte
        last = node.children[-1] if node.children else None
        closing = last.start_byte if last is not None and not last.is_named and last != first else node.end_byte
        inner = [c for c in node.children if c not in (first, last) or c.is_named]
        pos = opening
        for child in inner:
            if child.start_byte > pos:
                b.add(_unescape_double(self.data[pos : child.start_byte].decode("utf-8", "surrogateescape")))
            if child.type == "string_content":
                b.add(_unescape_double(self.text(child)))
            elif child.is_named:
                self._unit(child, b)
            pos = child.end_byte
        if closing > pos:
            b.add(_unescape_double(self.data[pos:closing].decode("utf-8", "surrogateescape")))
        b.started = True


@dataclass
class _WordBuilder:
    text: list[str] = field(default_factory=list)
    dynamic: bool = False
    glob: bool = False
    brace_open: bool = False
    brace: bool = False
    tilde: bool = False
    started: bool = False
    subs: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)

    def add(self, piece: str) -> None:
        if piece:
            self.text.append(piece)
            self.started = True


def _literal(raw: str, b: _WordBuilder) -> None:
    """Unquoted text: backslashes escape, ``* ? [`` glob, ``{a,b}`` expands, a leading ``~`` is home."""
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\":
            if raw.startswith("\\\n", i):
                i += 2
                continue
            b.add(raw[i + 1 : i + 2] or "\\")
            i += 2
            continue
        if c in "*?[":
            b.glob = True
        elif c == "{":
            b.brace_open = True
        elif c in ",." and b.brace_open and (c == "," or raw.startswith("..", i)):
            b.brace = True
        elif c == "~" and not b.started:
            b.tilde = True
        b.add(c)
        i += 1


def _substitution_source(raw: str) -> str:
    if raw.startswith("$("):
        return raw[2:-1]
    inner, out, i = raw[1:-1], [], 0  # `...`: backslash escapes only ` $ and backslash
    while i < len(inner):
        if inner[i] == "\\" and i + 1 < len(inner) and inner[i + 1] in "`$\\":
            out.append(inner[i + 1])
            i += 2
        else:
            out.append(inner[i])
            i += 1
    return "".join(out)


def _unescape_double(text: str) -> str:
    """Inside double quotes a backslash escapes only $ ` " \\ and newline."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in '$`"\\\n':
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _ansi_c(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if m := re.match(r"x([0-9a-fA-F]{1,2})", body[i + 1 : i + 4]):
                out.append(chr(int(m.group(1), 16)))
                i += 1 + len(m.group(0))
                continue
            if m := re.match(r"[0-7]{1,3}", body[i + 1 : i + 4]):
                out.append(chr(int(m.group(0), 8)))
                i += 1 + len(m.group(0))
                continue
            out.append(_ANSI_C.get(nxt, nxt))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)
