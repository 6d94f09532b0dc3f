"""Acceptance criteria that are code are checked as code. A request's criterion such as
``multiply(3, 4) == 12`` is a claim a machine can test, and leaving it to the reviewer model is
how the demo ended in a false PASS: the 0.5B coder never wrote ``multiply``, the old tests still
passed, and the 0.5B reviewer said PASS. So each criterion that is a Python expression calling
code becomes a verify step of the plan: it imports the modules the plan writes and asserts the
expression. It runs in the container like any check, again in every fix round, and a request
cannot pass over it failing. Prose criteria ("the test suite passes") stay the reviewer's. Pure."""

from __future__ import annotations

import ast
import builtins
import json
import shlex
from pathlib import PurePosixPath

from models.plan import FileStep, Plan, VerifyStep

NOT_MODULES = {"setup", "conftest", "__main__"}
BUILTINS = set(dir(builtins))


def as_expression(criterion: str) -> str:
    """The criterion as a Python expression that calls code, or "" when it is prose."""
    text = criterion.strip().strip("`").strip()
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        return ""
    if not any(isinstance(node, ast.Call) for node in ast.walk(tree)):
        return ""  # a bare name or a number: words that happen to parse
    return text


def is_test_path(path: str) -> bool:
    stem, parts = PurePosixPath(path).stem, PurePosixPath(path).parts
    return stem.startswith("test_") or stem.endswith("_test") or any(p in ("tests", "test") for p in parts[:-1])


def plan_modules(plan: Plan) -> list[str]:
    """The importable modules the plan writes, packages first: ``calc/ops.py`` gives ``calc`` and
    ``calc.ops`` (``src/`` layouts drop the ``src``); tests and scripts are left out."""
    modules: list[str] = []
    for step in plan.steps:
        if not isinstance(step, FileStep) or step.action == "delete" or is_test_path(step.path):
            continue
        path = PurePosixPath(step.path)
        if path.suffix != ".py" or path.stem in NOT_MODULES:
            continue
        parts = list(path.with_suffix("").parts)
        if parts[0] == "src":
            parts = parts[1:]
        if parts and parts[-1] == "__init__":
            parts = parts[:-1]
        if not parts or not all(p.isidentifier() for p in parts):
            continue
        modules.extend(".".join(parts[:n]) for n in range(1, len(parts) + 1))
    return list(dict.fromkeys(modules))


def free_names(expression: str) -> list[str]:
    """The names the expression reads that it does not bind itself and Python does not provide."""
    tree = ast.parse(expression, mode="eval")
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    bound |= {
        a.arg for n in ast.walk(tree) if isinstance(n, ast.Lambda) for a in ast.walk(n.args) if isinstance(a, ast.arg)
    }
    names = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    return [n for n in dict.fromkeys(names) if n not in bound and n not in BUILTINS]


def check_command(expression: str, modules: list[str]) -> str:
    """A read-only command (``-B``: no bytecode written) that fails unless the expression holds.
    It imports each module by name and takes each name the expression reads from them (the later
    module wins), never ``import *``, which hides what it brings (the gate holds it); a name no
    module defines is named as such, and for a comparison the failure says what the left side
    gave: what the coder needs to fix it."""
    tree = ast.parse(expression, mode="eval").body
    failed = json.dumps("criterion not met: " + expression)
    if isinstance(tree, ast.Compare) and len(tree.ops) == 1:
        left = ast.unparse(tree.left)
        test = f"_got = ({left}); assert " + ast.unparse(ast.Compare(ast.Name("_got"), tree.ops, tree.comparators))
        failed += f' + "; {left} gave " + repr(_got)'
    else:
        test = f"assert ({expression})"
    imported = {m.split(".")[0] for m in modules}  # ``calc.multiply(3, 4)``: bound by ``import calc``
    names = [n for n in free_names(expression) if n not in imported]
    where = json.dumps(f"criterion not met: {expression}; not defined in {', '.join(modules)}: ")
    lines = [
        'import sys; sys.path[:0] = ["", "src"]',
        *(f"import {m}" for m in modules),
        *(
            [
                "_names = {" + ", ".join(f"**vars({m})" for m in modules) + "}",
                f"_missing = [n for n in {json.dumps(names)} if n not in _names]",
                f'assert not _missing, {where} + ", ".join(_missing)',
                *(f"{n} = _names[{json.dumps(n)}]" for n in names),
            ]
            if names
            else []
        ),
        f"{test}, {failed}",
        f"print({json.dumps('criterion met: ' + expression)})",
    ]
    return f"python -B -c {shlex.quote('; '.join(lines))}"


def with_criteria(plan: Plan, criteria: list[str]) -> tuple[Plan, list[str]]:
    """The plan with a check for each criterion that is code (after its own steps), and those
    criteria; the plan unchanged when none is, or when it writes no Python module to import."""
    expressions = [e for e in (as_expression(c) for c in criteria) if e]
    modules = plan_modules(plan)
    if not expressions or not modules:
        return plan, []
    ids = {s.id for s in plan.steps}
    checks: list[VerifyStep] = []
    for expression in expressions:
        n = 1
        while f"criterion{n}" in ids:
            n += 1
        ids.add(f"criterion{n}")
        checks.append(VerifyStep(id=f"criterion{n}", type="verify", command=check_command(expression, modules)))
    return plan.model_copy(update={"steps": [*plan.steps, *checks]}), expressions
