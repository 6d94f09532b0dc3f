"""The bash grammar, and the two things done to a source around parsing it: joining continued
lines before (as bash does), and saying where a source the grammar rejects goes wrong."""

from __future__ import annotations

import tree_sitter_bash
from tree_sitter import Language, Node, Parser

PARSER = Parser(Language(tree_sitter_bash.language()))


def join_continued_lines(data: bytes) -> bytes:
    """bash removes backslash-newline before it splits words (``r\\<newline>m`` is ``rm``); the
    grammar does not, so remove them first, except where they are literal: single quotes,
    comments and the bodies of quoted here-documents, which the first parse finds."""
    if b"\\\n" not in data:
        return data
    tree = PARSER.parse(data)
    keep: list[tuple[int, int]] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type in ("raw_string", "comment", "heredoc_body"):
            keep.append((node.start_byte, node.end_byte))
            continue
        stack.extend(node.children)
    out, i = bytearray(), 0
    while i < len(data):
        if data.startswith(b"\\\n", i) and not any(a <= i < b for a, b in keep):
            i += 2
            continue
        if data[i : i + 1] == b"\\":  # an escaped backslash stays, with what follows it
            out += data[i : i + 2]
            i += 2
            continue
        out += data[i : i + 1]
        i += 1
    return bytes(out)


def error_text(root: Node, data: bytes) -> str:
    bad = _first_error(root)
    if bad is None:
        return "the shell grammar rejects it"
    line = bad.start_point[0] + 1
    if bad.is_missing:
        return f"'{bad.type}' is missing (line {line})"
    near = data[bad.start_byte : bad.end_byte].decode("utf-8", "replace").strip().splitlines()
    shown = near[0][:30] if near else ""
    return f"syntax error near {shown!r} (line {line})" if shown else f"syntax error at line {line}"


def _first_error(node: Node) -> Node | None:
    if node.is_error or node.is_missing:
        return node
    for child in node.children:
        if child.has_error or child.is_missing:
            found = _first_error(child)
            if found is not None:
                return found
    return None
