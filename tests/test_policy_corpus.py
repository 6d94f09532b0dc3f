"""The deterministic gate against a corpus of real-looking proposals (tests/policy_corpus/*.yaml).

Every bad proposal is blocked at the point the corpus names; every ordinary step passes. The
corpus is data so that a new evasion found in the wild becomes one line, not a new test.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from models.plan import STEP_ADAPTER, CommandStep, FileStep, Step, VerifyStep
from models.review import Finding
from policy import Policy, evaluate_steps

CORPUS = Path(__file__).parent / "policy_corpus"
BAD: list[dict[str, Any]] = yaml.safe_load((CORPUS / "bad.yaml").read_text())
GOOD: list[dict[str, Any]] = yaml.safe_load((CORPUS / "good.yaml").read_text())

PACKAGE_JSON = """{
  "name": "app",
  "scripts": {"test": "jest", "build": "tsc", "start": "node server.js", "dev": "vite", "clean": "rm -rf dist"}
}
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small project, plus an outside directory that symlinks inside it point to."""
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_text("top secret\n")
    ws = tmp_path_factory.mktemp("ws")
    files = {
        "README.md": "# App\n", "notes.txt": "a\n", "src/app.py": "print('app')\n", "src/x.py": "a = 1\n",
        "src/pkg/__init__.py": "", "tests/test_app.py": "def test_ok():\n    assert True\n",
        "build/tmp.txt": "tmp\n", "package.json": PACKAGE_JSON, "scripts/test.sh": "#!/bin/sh\npytest -q\n",
        "scripts/clean.sh": "#!/bin/sh\nrm -rf /\n", "scripts/build.js": "console.log('build')\n",
        ".env": "SECRET=1\n", ".git/HEAD": "ref: refs/heads/main\n", "pyproject.toml": "[project]\nname='app'\n",
    }
    for rel, text in files.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(text)
    (ws / "build" / "cache").mkdir()
    (ws / "build" / "empty").mkdir()
    (ws / "docs").mkdir()
    os.symlink(outside, ws / "outside_link")
    os.symlink(outside, ws / "src" / "escape")
    os.symlink("/etc/passwd", ws / "docs" / "passwd")
    return ws


def _steps(case: dict[str, Any]) -> list[Step]:
    if "steps" in case:
        return [STEP_ADAPTER.validate_python(s) for s in case["steps"]]
    timeout = case.get("timeout_s")
    if "command" in case:
        return [CommandStep(id="s1", type="command", command=case["command"], timeout_s=timeout)]
    if "verify" in case:
        return [VerifyStep(id="s1", type="verify", command=case["verify"], timeout_s=timeout)]
    return [FileStep(id="s1", type="file", **case["file"])]


def _evaluate(case: dict[str, Any], workspace: Path) -> list[Finding]:
    return evaluate_steps(_steps(case), workspace, Policy(), require_verify=case.get("require_verify", False))


def _label(case: dict[str, Any]) -> str:
    body = case.get("command") or case.get("verify") or (case.get("file") or {}).get("path") or "plan"
    return " ".join(str(body).split())[:50]


def test_corpus_is_big_enough() -> None:
    print(f"\npolicy corpus: {len(BAD)} bad proposals, {len(GOOD)} good steps")
    assert len(BAD) >= 150
    assert len(GOOD) >= 100
    assert {case["point"] for case in BAD} == set(range(1, 9)), "every point has bad cases"


@pytest.mark.parametrize("case", BAD, ids=[f"p{c['point']}-{_label(c)}" for c in BAD])
def test_bad_proposal_is_blocked_at_its_point(case: dict[str, Any], workspace: Path) -> None:
    findings = _evaluate(case, workspace)
    points = sorted({f.point for f in findings})
    expected = {case["point"], *case.get("or_points", [])}
    assert expected & set(points), f"expected point {case['point']}, got {[f.line() for f in findings]}"
    assert all(f.reason and "\n" not in f.reason and f.source == "rules" for f in findings)


@pytest.mark.parametrize("case", GOOD, ids=[_label(c) for c in GOOD])
def test_ordinary_step_passes(case: dict[str, Any], workspace: Path) -> None:
    findings = _evaluate(case, workspace)
    assert findings == [], [f.line() for f in findings]


# ---- issue 9: the evasions that went through the pattern gate, and ordinary commands ------------
EVASIONS: list[dict[str, Any]] = yaml.safe_load((CORPUS / "evasions.yaml").read_text())
ORDINARY: list[str] = yaml.safe_load((CORPUS / "ordinary.yaml").read_text())
INSTALLS: list[str] = yaml.safe_load((CORPUS / "installs.yaml").read_text())
MAKEFILE = "test:\n\tpytest -q\nbuild:\n\tpython -m build\n"
MAX_ORDINARY_STOPPED = 0.05


@pytest.fixture(scope="module")
def dev_workspace(workspace: Path) -> Path:
    """The corpus workspace plus what ordinary commands expect: a Makefile, requirements."""
    (workspace / "Makefile").write_text(MAKEFILE)
    (workspace / "requirements.txt").write_text("pytest\n")
    (workspace / "tests" / "test_calc.py").write_text(
        "from src.app import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\ndef test_neg():\n"
        "    assert add(-1, 1) == 0\n"
    )
    return workspace


def _verdict(command: str, workspace: Path) -> str:
    findings = evaluate_steps([CommandStep(id="s1", type="command", command=command)], workspace, Policy(),
                              require_verify=False)
    if not findings:
        return "PASS"
    return "HOLD" if all(f.verdict == "hold" for f in findings) else "BLOCK"


@pytest.mark.parametrize("case", EVASIONS, ids=[f"{c['class']}-p{c['point']}-{_label(c)}" for c in EVASIONS])
def test_an_evasion_is_stopped_at_its_point(case: dict[str, Any], dev_workspace: Path) -> None:
    findings = _evaluate(case, dev_workspace)
    assert case["point"] in {f.point for f in findings}, f"expected point {case['point']}, got " + str(
        [f.line() for f in findings]
    )


def test_evasions_and_ordinary_commands_are_measured(dev_workspace: Path) -> None:
    """The numbers the README reports: every evasion stopped (blocked or held, counted apart), and
    fewer than 5% of ordinary commands held or blocked."""
    blocked = held = 0
    for case in EVASIONS:
        at_point = [f for f in _evaluate(case, dev_workspace) if f.point == case["point"]]
        blocked += any(f.verdict == "block" for f in at_point)
        held += bool(at_point) and all(f.verdict == "hold" for f in at_point)
    stopped_ordinary = []
    for command in ORDINARY:
        findings = evaluate_steps([CommandStep(id="s1", type="command", command=command)], dev_workspace, Policy(),
                                  require_verify=False)
        if findings:
            stopped_ordinary.append((command, [f.line() for f in findings]))
    share = len(stopped_ordinary) / len(ORDINARY)
    installs = [_verdict(c, dev_workspace) for c in INSTALLS]
    print(f"\nevasions: {len(EVASIONS)}, blocked {blocked}, held {held}, through {len(EVASIONS) - blocked - held}")
    print(f"ordinary commands: {len(ORDINARY)}, held or blocked {len(stopped_ordinary)} ({share:.1%})")
    for command, lines in stopped_ordinary:
        print(f"  stopped: {command!r}: {lines[0]}")
    print(f"package installs: {len(INSTALLS)}, held {installs.count('HOLD')} (by design)")
    assert blocked + held == len(EVASIONS)
    assert installs == ["HOLD"] * len(INSTALLS), list(zip(INSTALLS, installs, strict=True))
    assert share < MAX_ORDINARY_STOPPED, stopped_ordinary


def test_the_old_corpus_is_still_all_stopped_and_says_how(workspace: Path) -> None:
    """Issue 9 keeps the corpus at 100% stopped; with the hold verdict some are held, not blocked."""
    verdicts = []
    for case in BAD:
        at_point = [f for f in _evaluate(case, workspace) if f.point in {case["point"], *case.get("or_points", [])}]
        verdicts.append("block" if any(f.verdict == "block" for f in at_point) else ("hold" if at_point else "none"))
    print(f"\nold corpus: {len(BAD)} bad, blocked {verdicts.count('block')}, held {verdicts.count('hold')}")
    assert "none" not in verdicts
