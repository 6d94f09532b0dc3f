"""Which Python files a command runs: the script, the ``-m`` module, or what ``pytest`` collects.

Only files the plan itself wrote are asked about (``plan_files``): those are what nobody has read
yet; the project's own files were there before the request."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from policy.invocation import Invocation
from policy.words import is_python

_TEST_FILE = re.compile(r"(^|/)(conftest\.py|test_[^/]*\.py|[^/]*_test\.py)$")
_PYTEST = frozenset({"pytest", "py.test"})
_OPTIONS_WITH_VALUE = frozenset({"-W", "-X", "-c", "-m"})


def python_files_run(inv: Invocation, plan_files: Mapping[str, str]) -> list[str]:
    """Paths (keys of ``plan_files``) of the Python files ``inv`` runs."""
    cwds = [c for c in inv.cwds if c is not None] or ["."]
    if inv.name in _PYTEST:
        return _collected(plan_files)
    if inv.name.endswith(".py") and inv.argv0 is not None:
        return _existing([inv.argv0.text], cwds, plan_files)
    if not is_python(inv.name):
        return []
    texts = inv.texts
    i = 0
    while i < len(texts):
        t = texts[i]
        if t == "-m" and i + 1 < len(texts):
            module = texts[i + 1]
            if module == "pytest":
                return _collected(plan_files)
            base = module.replace(".", "/")
            return _existing([f"{base}.py", f"{base}/__main__.py", f"src/{base}.py", f"src/{base}/__main__.py"],
                             cwds, plan_files)
        if t == "-c":
            return []
        if t.startswith("-"):
            i += 2 if t in _OPTIONS_WITH_VALUE else 1
            continue
        return _existing([t], cwds, plan_files)
    return []


def _collected(plan_files: Mapping[str, str]) -> list[str]:
    return sorted(p for p in plan_files if _TEST_FILE.search(p))


def _existing(candidates: list[str], cwds: list[str], plan_files: Mapping[str, str]) -> list[str]:
    found = []
    for cwd in cwds:
        for candidate in candidates:
            key = os.path.normpath(os.path.join(cwd, candidate))
            if key in plan_files and key not in found:
                found.append(key)
    return found
