"""Time the deterministic gate takes per step, on every step of the policy corpora. Not a test: run
it on the machine whose numbers you want.

    .venv/bin/python bench/bench_policy.py [--rounds 5] [--json]

Each sample is one ``evaluate_steps`` call on one corpus case (a step, or a small plan), in the
corpus workspace of tests/test_policy_corpus.py: parse (tree-sitter-bash, Python's ast), every
rule, real paths and the files the steps run. Baselines measured in the same run, on the same
commands: ``shlex.split`` (a trivial parse) and a bare tree-sitter parse, so that the ratios say
how much the rules cost on top of reading the shell. Target: p95 under 50 ms per step."""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.plan import STEP_ADAPTER, CommandStep, FileStep, Step, VerifyStep  # noqa: E402
from policy import Policy, evaluate_steps  # noqa: E402
from policy.parsers.shell_source import PARSER  # noqa: E402

CORPUS = REPO / "tests" / "policy_corpus"
TARGET_P95_MS = 50.0


def summary(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {"median_ms": round(statistics.median(ms), 3), "p95_ms": round(p95, 3), "max_ms": round(ms[-1], 3),
            "n": len(ms)}


def steps_of(case: Any) -> list[Step]:
    if isinstance(case, str):
        return [CommandStep(id="s1", type="command", command=case)]
    if "steps" in case:
        return [STEP_ADAPTER.validate_python(s) for s in case["steps"]]
    if "command" in case:
        return [CommandStep(id="s1", type="command", command=case["command"], timeout_s=case.get("timeout_s"))]
    if "verify" in case:
        return [VerifyStep(id="s1", type="verify", command=case["verify"], timeout_s=case.get("timeout_s"))]
    return [FileStep(id="s1", type="file", **case["file"])]


def workspace(root: Path) -> Path:
    files = {
        "README.md": "# App\n", "notes.txt": "a\n", "src/app.py": "print('app')\n", "src/x.py": "a = 1\n",
        "tests/test_app.py": "def test_ok():\n    assert True\n", "build/tmp.txt": "tmp\n",
        "package.json": '{"scripts": {"test": "jest", "build": "tsc", "clean": "rm -rf dist"}}\n',
        "scripts/test.sh": "#!/bin/sh\npytest -q\n", "Makefile": "test:\n\tpytest -q\n", ".env": "SECRET=1\n",
        "pyproject.toml": "[project]\nname='app'\n", "requirements.txt": "pytest\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="times each case is checked")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    cases: list[Any] = []
    for name in ("bad.yaml", "good.yaml", "evasions.yaml", "ordinary.yaml", "installs.yaml"):
        cases += yaml.safe_load((CORPUS / name).read_text())
    plans = [steps_of(c) for c in cases]
    commands = [s.command for p in plans for s in p if isinstance(s, CommandStep | VerifyStep)]
    policy = Policy()
    with tempfile.TemporaryDirectory() as tmp:
        ws = workspace(Path(tmp))
        for plan in plans:  # warm-up: imports, caches
            evaluate_steps(plan, ws, policy, require_verify=False)
        gate = [timed(lambda p=plan: evaluate_steps(p, ws, policy, require_verify=False))  # type: ignore[misc]
                for _ in range(args.rounds) for plan in plans]
    split = [timed(lambda c=c: _shlex(c)) for _ in range(args.rounds) for c in commands]  # type: ignore[misc]
    parse = [timed(lambda c=c: PARSER.parse(c.encode())) for _ in range(args.rounds) for c in commands]  # type: ignore[misc]
    out = {
        "cases": len(plans), "rounds": args.rounds,
        "gate_per_step": summary(gate), "baseline_shlex_split": summary(split),
        "baseline_tree_sitter_parse": summary(parse),
    }
    gate_s, split_s, parse_s = out["gate_per_step"], out["baseline_shlex_split"], out["baseline_tree_sitter_parse"]
    out["ratio_gate_to_shlex_median"] = round(gate_s["median_ms"] / max(split_s["median_ms"], 1e-6), 1)
    out["ratio_gate_to_parse_median"] = round(gate_s["median_ms"] / max(parse_s["median_ms"], 1e-6), 1)
    out["target_p95_ms"] = TARGET_P95_MS
    out["target_met"] = gate_s["p95_ms"] < TARGET_P95_MS
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['cases']} corpus cases x {args.rounds} rounds")
    for label, key in (("gate (evaluate_steps)", "gate_per_step"), ("baseline: shlex.split", "baseline_shlex_split"),
                       ("baseline: tree-sitter parse", "baseline_tree_sitter_parse")):
        s = out[key]
        print(f"  {label:28} median {s['median_ms']:8.3f} ms   p95 {s['p95_ms']:8.3f} ms   max {s['max_ms']:8.3f} ms")
    print(f"  gate / shlex.split (median): {out['ratio_gate_to_shlex_median']}x;"
          f" gate / tree-sitter parse (median): {out['ratio_gate_to_parse_median']}x")
    print(f"  p95 target {TARGET_P95_MS} ms: {'met' if out['target_met'] else 'MISSED'}")


def _shlex(command: str) -> object:
    try:
        return shlex.split(command)
    except ValueError:
        return None


if __name__ == "__main__":
    main()
