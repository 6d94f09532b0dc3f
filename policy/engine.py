"""Runs every rule over a list of steps and turns the hits into findings.

Order of work for a command step: parse it (through every wrapper and nested shell), run the
per-command rules on each simple command, the per-script rules on each parsed script, the inline
code rules on ``python -c`` and friends, then the project's deny rules; finally drop the hits a
project allow rule exempts (points 4, 5 and 7 only, see ``config``). File steps are checked for
their path and content; the plan as a whole for consistency (point 8).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from models.edits import EditError, apply_blocks
from models.plan import CommandStep, FileStep, Step, VerifyStep
from models.review import Finding
from policy.commands import Loader, analyze
from policy.config import Policy, load_policy
from policy.invocation import Analysis, Invocation, ScriptInfo
from policy.parsers.python import read_python
from policy.paths import check_path, is_inside, workspace_root
from policy.rules import (
    consistency,
    content,
    destructive,
    inline,
    liveness,
    network,
    privilege,
    python_code,
    secrets,
    supply,
    test_weakening,
    workspace,
)
from policy.rules.base import Context, Hit

InvocationRule = Callable[[Invocation, Context], Iterator[Hit]]
ScriptRule = Callable[[ScriptInfo, Context], Iterator[Hit]]
INVOCATION_RULES: tuple[InvocationRule, ...] = (
    workspace.check, destructive.check, secrets.check, supply.check, network.check, privilege.check, liveness.check,
)
SCRIPT_RULES: tuple[ScriptRule, ...] = (
    destructive.check_script, supply.check_script, liveness.check_script, content.check_script,
)
MAX_SCRIPT_BYTES = 256 * 1024
MAX_REASON = 240


def evaluate_steps(
    steps: list[Step], workspace: Path, policy: Policy | None = None, require_verify: bool = True
) -> list[Finding]:
    """Findings for every rule the steps break; an empty list means the rules allow them.

    ``policy`` None reads the workspace's ``.iter/policy.yaml`` (``ValueError`` if it is bad).
    Resolves real paths and reads scripts the steps run, so: activities only.
    """
    ctx = Context(workspace_root(workspace), policy if policy is not None else load_policy(workspace))
    written: dict[str, str | None] = {}  # what earlier file steps leave in a path (None: deleted)
    analyses: dict[str, Analysis] = {}
    findings: list[Finding] = []
    for step in steps:
        try:
            if isinstance(step, FileStep):
                hits = list(_file_hits(step, ctx))
                _remember(step, written)
            else:
                plan_files = {k: v for k, v in written.items() if v is not None}
                analysis = analyze(step.command, _loader(ctx.root, written), plan_files)
                analyses[step.id] = analysis
                hits = list(_command_hits(step, analysis, ctx))
        except Exception as exc:  # a bug in a rule must block the step, never let it through
            hits = [Hit(7, f"the rules could not check this step ({type(exc).__name__}); blocked to be safe")]
        findings.extend(_findings(step.id, hits, ctx.policy))
    plan_hits = [
        *consistency.check_plan(steps, analyses, ctx.root, require_verify),
        *test_weakening.check_plan(steps, analyses, ctx.root),
    ]
    for step_id, h in plan_hits:
        findings.extend(_findings(step_id, [h], ctx.policy))
    return _dedupe(findings)


def network_steps(steps: list[Step], policy: Policy) -> set[str]:
    """Ids of the command and verify steps a project allow rule with ``network: true`` covers."""
    if not any(rule.network for rule in policy.allow):
        return set()
    out: set[str] = set()
    for step in steps:
        if isinstance(step, CommandStep | VerifyStep):
            invs = analyze(step.command).invocations
            if any(policy.allows_network(i.normalized) for i in invs if i.name):
                out.add(step.id)
    return out


# ---- one step ------------------------------------------------------------------------------------
def _command_hits(step: CommandStep | VerifyStep, analysis: Analysis, ctx: Context) -> Iterator[Hit]:
    if not step.command.strip():
        yield Hit(7, "the command is empty")
    yield from (Hit(p.point, p.reason, hold=p.hold) for p in analysis.problems)
    for what in secrets.scan_text(step.command, command=True):
        yield Hit(3, f"the command contains {what}")
    if step.timeout_s is not None and step.timeout_s > ctx.policy.max_timeout_s:
        yield Hit(7, f"timeout_s {step.timeout_s} is above the {ctx.policy.max_timeout_s} s cap")
    yield from _analysis_hits(analysis, ctx, depth=0)


def _analysis_hits(analysis: Analysis, ctx: Context, depth: int) -> Iterator[Hit]:
    for inv in analysis.invocations:
        for rule in INVOCATION_RULES:
            yield from rule(inv, ctx)
        for deny in ctx.policy.deny:
            if inv.name and deny.matches(inv.normalized):
                yield Hit(deny.point, deny.reason or f"matches the project's deny rule /{deny.pattern}/")
    for info in analysis.scripts:
        for script_rule in SCRIPT_RULES:
            yield from script_rule(info, ctx)
    for lang, code, inv in analysis.inline_code:
        yield from inline.check(lang, code, inv, ctx)
        if lang == "python":
            yield from _python_hits(code, f"code run by `{inv.name}`", inv, ctx, depth)
        if depth < 2:
            for snippet in inline.shell_strings(code):
                nested = analyze(snippet)
                nested.problems.clear()  # a string literal that is not shell is just a string
                for h in _analysis_hits(nested, ctx, depth + 1):
                    yield Hit(h.point, f"{h.reason} (run by `{inv.name}` code)", h.command, h.hold)
    for path, text, inv in analysis.python_files:
        yield from _python_hits(text, f"{path} (written by the plan, run by `{inv.name}`)", inv, ctx, depth)


def _python_hits(code: str, label: str, inv: Invocation, ctx: Context, depth: int) -> Iterator[Hit]:
    """Python read with ``ast``: its resolved calls, and the shell commands it runs, checked as commands."""
    facts = read_python(code)
    yield from python_code.check(facts, label, inv, ctx)
    if depth < 2:
        for command in facts.commands:
            for h in _analysis_hits(analyze(command), ctx, depth + 1):
                yield Hit(h.point, f"{h.reason} (run by {label})", h.command, h.hold)


def _file_hits(step: FileStep, ctx: Context) -> Iterator[Hit]:
    if reason := check_path(step.path, ctx.root):
        yield Hit(1, reason)
    if step.content is not None and step.action != "delete":
        for point, reason in content.check_content(step.content, step.path):
            yield Hit(point, reason)


# ---- plumbing ------------------------------------------------------------------------------------
def _findings(step_id: str, hits: Iterable[Hit], policy: Policy) -> list[Finding]:
    out = []
    for h in hits:
        if h.command is not None and policy.exempts(h.point, h.command):
            continue
        reason = " ".join(h.reason.split())
        if len(reason) > MAX_REASON:
            reason = reason[: MAX_REASON - 3] + "..."
        verdict = "hold" if h.hold else "block"
        out.append(Finding(point=h.point, step_id=step_id, reason=reason, source="rules", verdict=verdict))
    return out


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[int, str, str]] = set()
    out = []
    for f in findings:
        key = (f.point, f.step_id, f.reason)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _remember(step: FileStep, written: dict[str, str | None]) -> None:
    key = os.path.normpath(step.path)
    if step.action == "delete":
        written[key] = None
    elif step.action == "append":
        written[key] = (written.get(key) or "") + (step.content or "")
    elif step.action == "edit" and isinstance(written.get(key), str):
        try:
            written[key] = apply_blocks(written[key] or "", step.content or "", step.path)
        except EditError:
            written[key] = step.content  # the blocks as text: a script made of them does not parse, so it is blocked
    else:  # create, modify; an edit of a file no earlier step wrote is judged by its blocks' text
        written[key] = step.content


def _loader(root: Path, written: dict[str, str | None]) -> Loader:
    """Reads a script a command runs: as an earlier step leaves it, else from the workspace."""
    snapshot = dict(written)

    def load(path: str, cwd: str) -> str | None:
        rel = os.path.normpath(os.path.join(cwd, path))
        if rel.startswith(("..", "/", "~")):
            return None
        if rel in snapshot:
            return snapshot[rel]
        real = os.path.realpath(root / rel)
        if not is_inside(real, root) or not os.path.isfile(real) or os.path.getsize(real) > MAX_SCRIPT_BYTES:
            return None
        try:
            return Path(real).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    return load
