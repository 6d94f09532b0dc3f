"""What a rewritten Python file keeps. Asked to add one function to a module, a small model
answers with the new function alone: Qwen2.5-Coder-0.5B wrote the demo's ``ops.py`` as just
``multiply``, dropping ``add`` and ``subtract``; asked again, naming what it dropped, it sent the
identical answer three times out of three. So the pipeline does not ask: when a whole-file answer
leaves out top-level definitions the file has, and the request does not name them (a request to
remove or rename ``foo`` says ``foo``), the answer is merged into the file as it is. Each
definition the answer gives replaces the file's own, in place; new ones, and new imports, are
added; the ones it left out stay. An answer that keeps every definition is taken as it is (a
rewrite that means to restructure). Pure: the activity reads the file, this decides."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from pydantic import BaseModel

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class KeepInput(BaseModel):
    workspace: str
    path: str
    content: str  # the answer: the file's whole new content
    request_text: str  # the request's description and criteria: names it mentions may go


class KeepOutput(BaseModel):
    content: str
    kept: list[str] = []  # the file's definitions the answer left out, kept


@dataclass(frozen=True)
class Segment:
    name: str  # a def's, class's or plain assignment's name; "" for anything else
    is_import: bool
    start: int  # 0-based first line (decorators included)
    end: int  # 0-based line after the last
    text: str


def segments(source: str) -> list[Segment] | None:
    """The module's top-level statements with their lines; None when it does not parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    lines = source.splitlines(keepends=True)
    out: list[Segment] = []
    for node in tree.body:
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))]) - 1
        end = node.end_lineno or node.lineno
        out.append(Segment(_name(node), isinstance(node, (ast.Import, ast.ImportFrom)), start, end,
                           "".join(lines[start:end])))  # fmt: skip
    return out


def _name(node: ast.stmt) -> str:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    names = [t.id for t in targets if isinstance(t, ast.Name)]
    return names[0] if len(names) == 1 and names[0] != "__all__" else ""


def top_level_names(path: str, content: str) -> list[str]:
    """The functions, classes and plain assignments a Python file defines at its top level."""
    found = segments(content) if PurePosixPath(path).suffix == ".py" else None
    return list(dict.fromkeys(s.name for s in found or [] if s.name))


def merge(path: str, original: str, answer: str, request_text: str) -> tuple[str, list[str]]:
    """The answer merged into the original when it left out definitions the request does not
    name, and those names; the answer and [] otherwise (or when either does not parse)."""
    if PurePosixPath(path).suffix != ".py":
        return answer, []
    old, new = segments(original), segments(answer)
    if not old or new is None:
        return answer, []
    named = set(WORD.findall(request_text))
    given = {s.name: s for s in new if s.name}
    left_out = [s.name for s in old if s.name and s.name not in given]
    kept = [n for n in dict.fromkeys(left_out) if n not in named]
    if not kept:
        return answer, []
    lines = original.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    # In place, from the bottom up so earlier line numbers hold: a definition the answer gives
    # replaces the file's own; one the request names and the answer left out goes.
    for seg in reversed(old):
        if seg.name in given:
            lines[seg.start : seg.end] = [given[seg.name].text + ("" if given[seg.name].text.endswith("\n") else "\n")]
        elif seg.name and seg.name in named and seg.name not in given:
            lines[seg.start : seg.end] = []
    known = {s.name for s in old if s.name} | {s.text.strip() for s in old}
    imports = [s.text for s in new if s.is_import and s.text.strip() not in known]
    docstring = new[0] if new and _is_docstring(new[0]) else None  # the file keeps its own
    added = [
        s.text
        for s in new
        if not s.is_import and s is not docstring and (s.name not in known if s.name else s.text.strip() not in known)
    ]
    if imports:
        after = max((s.end for s in old if s.is_import), default=_after_docstring(old))
        lines[after:after] = [t if t.endswith("\n") else t + "\n" for t in imports]
    body = "".join(lines).rstrip("\n") + "\n"
    for text in added:
        body += "\n\n" + text.rstrip("\n") + "\n"
    return body, kept


def _is_docstring(seg: Segment) -> bool:
    return not seg.name and not seg.is_import and seg.text.lstrip()[:1] in ('"', "'")


def _after_docstring(old: list[Segment]) -> int:
    return old[0].end if old and _is_docstring(old[0]) else 0
