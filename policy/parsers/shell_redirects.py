"""Redirections, read from the tree: ``> file``, ``2>&1``, ``<<< word`` and here-documents with
their bodies (and, for an unquoted delimiter, the substitutions the body runs)."""

from __future__ import annotations

from tree_sitter import Node

from policy.parsers.shell_words import WordReader
from policy.tokens import Redir, ShellSyntaxError, Word

REDIRECTS = frozenset({"file_redirect", "heredoc_redirect", "herestring_redirect"})
INPUT_OPS = frozenset({"<", "<<", "<<-", "<<<"})


def read_redirect(node: Node, read: WordReader) -> Redir:
    """One redirection node (of a type in ``REDIRECTS``). What follows a here-document's delimiter
    on its line (``<<EOF > f``, ``<<EOF | sh``) hangs inside the node: the walker reads that."""
    fd_node = node.child_by_field_name("descriptor")
    fd = read.text(fd_node) if fd_node is not None else None
    op = next((c.type for c in node.children if not c.is_named), "")
    if node.type == "file_redirect":
        dest = node.children_by_field_name("destination")
        if len(dest) != 1:
            raise ShellSyntaxError(f"redirection {op} has no single target")
        return Redir(op=op, fd=fd, target=read.word(dest[0]))
    if node.type == "herestring_redirect":
        target = next((c for c in node.named_children if c.type != "file_descriptor"), None)
        if target is None:
            raise ShellSyntaxError("here-string <<< has no word")
        return Redir(op="<<<", fd=fd, target=read.word(target))
    return _heredoc(node, read, op, fd)


def _heredoc(node: Node, read: WordReader, op: str, fd: str | None) -> Redir:
    start = next((c for c in node.children if c.type == "heredoc_start"), None)
    body = next((c for c in node.children if c.type == "heredoc_body"), None)
    if start is None:
        raise ShellSyntaxError("here-document without a delimiter")
    raw_delim = read.text(start)
    expands = not any(q in raw_delim for q in "'\"\\")
    delimiter = raw_delim if expands else read.word(start).text
    delimiter = delimiter.replace("'", "").replace('"', "").replace("\\", "")
    text = read.text(body) if body is not None else ""
    text = text[:-1] if text.endswith("\n") else text
    subs = tuple(read.subs_in(body)) if body is not None and expands else ()
    return Redir(op=op, fd=fd, target=Word(raw_delim, delimiter), heredoc=text, delimiter=delimiter,
                 heredoc_subs=subs)
