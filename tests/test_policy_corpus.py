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
        "README.md": "# App\n",
        "notes.txt": "a\n",
        "src/app.py": "print('app')\n",
        "src/x.py": "a = 1\n",
        "src/pkg/__init__.py": "",
        "tests/test_app.py": "def test_ok():\n    assert True\n",
        "build/tmp.txt": "tmp\n",
        "package.json": PACKAGE_JSON,
        "scripts/test.sh": "#!/bin/sh\npytest -q\n",
        "scripts/clean.sh": "#!/bin/sh\nrm -rf /\n",
        "scripts/build.js": "console.log('build')\n",
        ".env": "SECRET=1\n",
        ".git/HEAD": "ref: refs/heads/main\n",
        "pyproject.toml": "[project]\nname='app'\n",
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
