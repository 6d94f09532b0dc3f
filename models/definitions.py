"""What a rewritten Python file must keep. Asked to add one function to a module, a small model
answers with the new function alone: Qwen2.5-Coder-0.5B wrote the demo's ``ops.py`` as just
``multiply``, dropping ``add`` and ``subtract``, then gave those back without ``multiply``, and
each answer parsed. A whole-file answer that loses a top-level definition the file had is asked
for again, naming what it lost, unless the request itself names it (a request to remove or rename
``foo`` says ``foo``). Pure: the prompt activity lists the names, the workflow compares."""

from __future__ import annotations

import ast
import re
from pathlib import PurePosixPath

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def top_level_names(path: str, content: str) -> list[str]:
    """The functions, classes and plain assignments a Python file defines at its top level, in
    order; [] for a file that is not Python or does not parse (nothing to hold an answer to)."""
    if PurePosixPath(path).suffix != ".py":
        return []
    try:
        tree = ast.parse(content)
    except (SyntaxError, ValueError):
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.extend(t.id for t in targets if isinstance(t, ast.Name) and t.id != "__all__")
    return list(dict.fromkeys(names))


def dropped(path: str, before: list[str], content: str, request_text: str) -> list[str]:
    """The names ``before`` had that ``content`` no longer defines and the request does not name."""
    if not before:
        return []
    now = set(top_level_names(path, content))
    if not now and content.strip():
        return []  # not parsed: the syntax check speaks for it
    named = set(WORD.findall(request_text))
    return [n for n in before if n not in now and n not in named]


def keep_ask(path: str, lost: list[str]) -> str:
    """Why the answer cannot stand, for the repair."""
    return (
        f"it drops {', '.join(lost)}, which {path} defines now; write the whole file: every existing "
        "definition, unchanged unless the request changes it, plus the new code"
    )
