"""Point 8, verification cannot be cheated: changes that weaken the tests are held for a person.

The test files a plan changes are compared before and after (as the workspace has them, or as an
earlier step left them): assertions removed or replaced by constants (``assert True``), tests
deleted, skipped or xfailed, collection hooks and ``collect_ignore*`` in a conftest.py, and pytest
options that deselect tests (``addopts`` with ``-k``, ``--deselect``, ``--ignore``, ``-p no:``).
A command that rewrites a test file (``sed -i``, ``>``, ``rm``) cannot be compared, so it is held
too. New tests are not weakening, unless they assert nothing but constants.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from models.plan import FileStep, Step
from policy.invocation import Analysis
from policy.parsers.python import UNREADABLE, parse_python
from policy.rules.base import Hit

POINT = 8
MAX_BYTES = 1024 * 1024
_TEST_FILE = re.compile(r"(^|/)(conftest\.py|test_[^/]*\.py|[^/]*_test\.py|tests?/.*\.py)$")
_CONFIG = re.compile(r"(^|/)(pytest\.ini|setup\.cfg|tox\.ini|pyproject\.toml)$")
_HOOKS = frozenset({"pytest_collection_modifyitems", "pytest_ignore_collect", "pytest_collect_file",
                    "pytest_pycollect_makeitem", "pytest_runtest_setup", "pytest_runtest_call",
                    "pytest_runtest_makereport", "pytest_report_teststatus", "pytest_sessionfinish",
                    "pytest_collection_finish", "pytest_deselected", "pytest_generate_tests"})
_DESELECT = re.compile(r"(^|\s)(-k\b|--deselect\b|--ignore(-glob)?\b|-p\s*no:|--co\b|--collect-only\b|-m\b)")
_REWRITERS = frozenset({"rm", "mv", "truncate", "shred", "tee", "unlink"})


@dataclass
class _Tests:
    """What a Python test file asserts: per test function, its assertions."""

    tests: dict[str, int]  # test name -> number of real (non-constant) assertions
    constant_asserts: int
    skips: int  # skip/xfail marks and calls
    hooks: set[str]
    ignores: bool  # collect_ignore / collect_ignore_glob


def check_plan(steps: list[Step], analyses: dict[str, Analysis], root: Path) -> Iterator[tuple[str, Hit]]:
    state: dict[str, str | None] = {}
    for step in steps:
        if isinstance(step, FileStep):
            key = os.path.normpath(step.path)
            before = state[key] if key in state else _read(root, key)
            after = _after(step, before)
            state[key] = after
            for reason in _compare(key, before, after):
                yield step.id, Hit(POINT, reason, hold=True)
        elif (analysis := analyses.get(step.id)) is not None:
            for reason in _commands(analysis):
                yield step.id, Hit(POINT, reason, hold=True)


def _read(root: Path, key: str) -> str | None:
    path = root / key
    try:
        if path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_BYTES:
            return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return None


def _after(step: FileStep, before: str | None) -> str | None:
    if step.action == "delete":
        return None
    if step.action == "append":
        return (before or "") + (step.content or "")
    return step.content or ""


def _compare(key: str, before: str | None, after: str | None) -> Iterator[str]:
    if _CONFIG.search(key):
        yield from _config(key, before or "", after or "")
        return
    if not _TEST_FILE.search(key):
        return
    if after is None:
        if before is not None:
            yield f"deletes the test file {key}: the tests it holds would no longer run"
        return
    old, new = _tests(before) if before is not None else None, _tests(after)
    if new is None:
        return  # not Python: the test run will say so
    if old is None:
        if new.tests and new.constant_asserts and not any(new.tests.values()):
            yield f"{key}: its tests assert only constants (assert True): they cannot fail"
        old = _Tests({}, 0, 0, set(), False)
        new = _Tests({}, 0, new.skips if key.endswith("conftest.py") else 0, new.hooks, new.ignores)
    gone = sorted(set(old.tests) - set(new.tests))
    if gone:
        yield f"{key}: removes the test(s) {', '.join(gone[:5])}"
    weaker = sorted(t for t in new.tests if t in old.tests and new.tests[t] < old.tests[t])
    if weaker:
        yield f"{key}: removes assertions from {', '.join(weaker[:5])}"
    if new.constant_asserts > old.constant_asserts:
        yield f"{key}: adds assertions of constants (assert True) that cannot fail"
    if new.skips > old.skips:
        yield f"{key}: skips or xfails tests that ran before"
    if added := sorted(new.hooks - old.hooks):
        yield f"{key}: adds the collection hook(s) {', '.join(added)}, which can hide tests"
    if new.ignores and not old.ignores:
        yield f"{key}: sets collect_ignore, so pytest skips files"


def _tests(text: str) -> _Tests | None:
    try:
        tree = parse_python(text)
    except UNREADABLE:
        return None
    tests: dict[str, int] = {}
    constant = skips = 0
    hooks: set[str] = set()
    ignores = False
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.name.startswith("test"):
                tests[node.name] = _real_asserts(node)
            if node.name in _HOOKS:
                hooks.add(node.name)
            skips += sum(1 for d in node.decorator_list if _is_skip(d))
        elif isinstance(node, ast.ClassDef):
            skips += sum(1 for d in node.decorator_list if _is_skip(d))
        elif isinstance(node, ast.Assert) and _constant(node.test):
            constant += 1
        elif isinstance(node, ast.Call) and _is_skip(node.func):
            skips += 1
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id.startswith("collect_ignore") for t in targets):
                ignores = True
            marks = any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets)
            if marks and node.value is not None and re.search(r"skip|xfail", ast.unparse(node.value)):
                skips += 1
    return _Tests(tests, constant, skips, hooks, ignores)


def _real_asserts(func: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    count = 0
    for node in ast.walk(func):
        if isinstance(node, ast.Assert) and not _constant(node.test):
            count += 1
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name.startswith(("self.assert", "pytest.raises", "pytest.approx", "self.fail", "pytest.fail")) or (
                name.split(".")[-1].startswith("assert") and "mock" not in name.lower()
            ):
                count += 1
        elif isinstance(node, ast.With) and any("raises" in ast.unparse(i.context_expr) for i in node.items):
            count += 1
    return count


def _constant(test: ast.expr) -> bool:
    """``assert True``, ``assert 1``, ``assert "x"``, ``assert 1 == 1``, ``assert not False``."""
    if isinstance(test, ast.Constant):
        return bool(test.value)
    if isinstance(test, ast.UnaryOp) and isinstance(test.operand, ast.Constant):
        return True
    if isinstance(test, ast.Compare) and isinstance(test.left, ast.Constant):
        return all(isinstance(c, ast.Constant) for c in test.comparators)
    return False


def _is_skip(node: ast.expr) -> bool:
    text = ast.unparse(node)
    return bool(re.search(r"\b(skip|skipif|xfail|skipTest|importorskip)\b", text)) and (
        "pytest" in text or "unittest" in text or text.startswith(("skip", "xfail", "self.skipTest"))
    )


def _config(key: str, before: str, after: str) -> Iterator[str]:
    old, new = _addopts(before), _addopts(after)
    added = [m.group(2) for m in _DESELECT.finditer(new)]
    kept = [m.group(2) for m in _DESELECT.finditer(old)]
    if len(added) > len(kept):
        yield f"{key}: pytest's addopts now deselect or ignore tests ({', '.join(dict.fromkeys(added))})"
    if _section(after, "testpaths") != _section(before, "testpaths") and _section(before, "testpaths"):
        yield f"{key}: changes testpaths, which decides which tests run"


def _addopts(text: str) -> str:
    return " ".join(m.group(1) for m in re.finditer(r"(?m)^\s*addopts\s*[=:]\s*(.*(?:\n[ \t]+.*)*)", text))


def _section(text: str, key: str) -> str:
    m = re.search(rf"(?m)^\s*{key}\s*[=:]\s*(.*)$", text)
    return m.group(1).strip() if m else ""


def _commands(analysis: Analysis) -> Iterator[str]:
    for inv in analysis.invocations:
        targets = [r.target.text for r in inv.cmd.redirects if r.target is not None and r.op in (">", ">>", ">|")]
        if inv.name in _REWRITERS or (inv.name == "sed" and any(t.startswith("-i") for t in inv.texts)) or (
            inv.name == "perl" and any(t.startswith("-i") or t == "-pi" for t in inv.texts)
        ):
            targets += [t for t in inv.texts if not t.startswith("-")]
        for target in targets:
            key = os.path.normpath(target)
            if _TEST_FILE.search(key) or _CONFIG.search(key):
                yield f"`{inv.name}` changes {key} in a way that cannot be compared (test files: through file steps)"
                return
