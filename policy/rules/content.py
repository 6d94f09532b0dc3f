"""What a step writes: secrets (point 3) and placeholder content (point 8).

Models that are asked for a whole file often answer with part of it and a comment standing in
for the rest (``# ... rest unchanged``, ``// ...existing code...``). Written as is, that comment
replaces the code it stands for, so it is a consistency failure, not a style issue. The patterns
look only at comments (and ``<insert ... here>`` markers), never at code, to stay clear of
Python's ``...`` and real prose.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from policy.invocation import ScriptInfo
from policy.rules.base import Context, Hit, hit
from policy.rules.secrets import scan_text

_COMMENT = re.compile(r"(?:^|\s)(?:#|//|/\*+|<!--|--|;;|\{/\*)\s*(.*)$|^\s*\*\s+(.*)$")
_PHRASES = re.compile(
    r"^(\.{3}|…)\s*$"  # a bare "# ..." standing for elided lines
    r"|^(\.{3}|…)\s*(existing|previous|original|other|remaining|rest|unchanged|same|more|etc|snip|omitted|code|your)\b"
    r"|\.{3}\s*(existing|previous|original|other|remaining|rest|unchanged|same)\b"
    r"|\b(rest|remainder) of (the )?(\w+ )?(code|file|implementation|function|class|module|methods?|body|logic|"
    r"content|tests?|script|component|config|imports|page|styles?)\b"
    r"|\b(existing|previous|original|other|remaining) (code|content|imports|methods|functions|tests|logic|"
    r"implementation|fields|routes|handlers)\b.*\b(here|unchanged|remains?|omitted|stays?|as is|as before|same)\b"
    r"|\b(code|content|implementation|everything else|methods|functions)\b.*\b(unchanged|omitted|elided)\b"
    r"|\b(for brevity|remains? the same|stays? the same|same as before|keep(s)? (the )?existing)\b"
    r"|^implement( (me|this|here))?\s*[.!]?$"
    r"|\b(implement (me|this|here)|your (code|implementation|logic) (goes )?here|add (your )?(code|logic|"
    r"implementation) here|fill (this |it )?in)\b",
    re.I,
)
# "TODO: implement" is a placeholder when nothing real follows it; above working code it is a note.
_TODO = re.compile(r"\btodo\b:?\s*(implement|fill in|add (the )?(code|logic|implementation)|write (the )?(code|"
                   r"implementation))\b(?P<rest>.*)$", re.I)
_STUB = re.compile(r"^\s*(pass|\.\.\.|return( None| null| undefined| nil)?;?|raise NotImplementedError\b.*|"
                   r"throw new Error\(.*not implemented.*\);?|unimplemented!\(\)|todo!\(\)|[}\])]+;?)\s*$", re.I)
_MARKER = re.compile(r"<\s*(insert|add|your|put|paste)\b[^<>\n]{0,60}\bhere\s*>|\[\s*(insert|your)\b[^\]\n]{0,60}\]",
                     re.I)


def placeholder(content: str) -> str | None:
    """The first line that stands in for code instead of being code, or None."""
    lines = content.splitlines()
    for i, line in enumerate(lines):
        if _MARKER.search(line):
            return line.strip()
        m = _COMMENT.search(line)
        if not m:
            continue
        comment = (m.group(1) or m.group(2) or "").rstrip("*/-> }").strip()
        if _PHRASES.search(comment):
            return line.strip()
        todo = _TODO.search(comment)
        if todo and _todo_stands_in(todo.group("rest"), line[: m.start()], lines[i + 1 :]):
            return line.strip()
    return None


def _todo_stands_in(rest: str, code_before: str, after: list[str]) -> bool:
    if rest.strip(" .:-").lower() in ("", "me", "this", "here", "it"):
        return True  # "TODO: implement", "TODO: implement this"
    if _STUB.match(code_before or "x"):
        return True  # pass  # TODO: implement the parser
    following = next((a for a in after if a.strip()), "")
    return bool(_STUB.match(following))


def check_content(content: str, path: str) -> Iterator[tuple[int, str]]:
    """(point, reason) for what a file step writes."""
    for what in scan_text(content):
        yield 3, f"{path} would contain {what}"
    if line := placeholder(content):
        yield 8, f"{path} would contain placeholder text instead of code: {_clip(line)!r}"


def check_script(info: ScriptInfo, ctx: Context) -> Iterator[Hit]:
    """``cat > src/app.py <<'EOF'`` writes its here-document: the same placeholder check applies."""
    for inv in info.invocations:
        writes = any(r.op in (">", ">>", ">|") for r in inv.cmd.redirects) or inv.name == "tee"
        for r in inv.cmd.redirects:
            if writes and r.heredoc and (line := placeholder(r.heredoc)):
                yield hit(inv, 8, f"the here-document writes placeholder text instead of code: {_clip(line)!r}")


def _clip(line: str) -> str:
    return line if len(line) <= 70 else line[:67] + "..."
