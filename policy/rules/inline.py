"""Code handed to an interpreter on the command line: ``python -c``, ``node -e``, ``perl -e``...

It is not shell, but the same eight points apply, so the snippet is searched for what matters:
paths and secret files in its string literals, network and destructive library calls, environment
dumps, endless loops and servers; and when it shells out (``os.system``, ``subprocess``,
``child_process``), its string literals are checked as shell commands too (``shell_strings``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from policy.invocation import Invocation
from policy.paths import looks_like_system_path, path_problem
from policy.rules.base import Context, Hit, hit, stdin_given
from policy.rules.secrets import secret_file
from policy.words import string_literals

_NETWORK = re.compile(
    r"\b(urllib|requests\.|httpx|http\.client|aiohttp|urlopen|ftplib|smtplib|paramiko|websocket|socket\.|"
    r"create_connection|fetch\(|https?\.(get|request)\(|axios|node-fetch|net\.connect|LWP|IO::Socket|HTTP::Tiny|"
    r"Net::HTTP|open-uri|URI\.open|TCPSocket)"
)
_DESTROY = re.compile(r"\b(shutil\.rmtree|os\.removedirs|rmtree|remove_dir_all|rm_rf|rimraf|FileUtils\.rm_r)\b"
                      r"|\b(rmSync|rmdirSync|fs\.rm|fs\.rmdir)\s*\([^)]*recursive")
_ENV_DUMP = re.compile(r"\bos\.environ\b(?!\s*(\[|\.get\b|\.setdefault\b|\.pop\b|\.copy\(\)|\.update\b|\|))"
                       r"|\bprocess\.env\b(?!\s*(\.|\[))|%ENV\b(?!\s*\{)|\bENV\.(to_h|each|inspect)\b")
_PRIVILEGE = re.compile(r"\bos\.set(e|re|res)?[ug]id\s*\(|chmod\w*\s*\([^)]*\b0o?(777|[2467][0-7]{3})\b")
_ENDLESS = re.compile(r"\bwhile\s*(\(\s*)?(True|true|1)(\s*\))?\s*[:{]|\bfor\s*\(\s*;\s*;\s*\)|\bfork\s+while\s+fork"
                      r"|\bloop\s+do\b")
_SERVE = re.compile(r"\b(serve_forever|run_forever|uvicorn\.run|app\.run)\s*\(|\.listen\s*\(\s*\d+|\bhttp\.server\b")
_SLEEP = re.compile(r"\b(time\.)?sleep\s*\(\s*(\d+(\.\d+)?)\s*\)")
_SHELL_OUT = re.compile(r"\b(os\.system|os\.popen|subprocess|commands\.getoutput|pty\.spawn|os\.exec\w*|child_process|"
                        r"execSync|spawnSync|execFileSync|system|popen|qx|IO\.popen|Open3|exec|spawn)\b|`[^`]+`|%x\(")


def check(lang: str, code: str, inv: Invocation, ctx: Context) -> Iterator[Hit]:
    label = f"code run by `{inv.name}`"
    for literal in string_literals(code):
        if len(literal) > 300 or "\n" in literal:
            continue
        if what := secret_file(literal):
            yield hit(inv, 3, f"{label} touches {literal!r} ({what})")
        elif looks_like_system_path(literal):
            reasons = (path_problem(literal, cwd, ctx.root, write=False) for cwd in inv.cwds)
            if reason := next((r for r in reasons if r), None):
                yield hit(inv, 1, f"{label} uses {reason}")
    checks = (
        (_NETWORK, 5, "uses the network"), (_DESTROY, 2, "deletes directory trees"),
        (_ENV_DUMP, 3, "dumps the environment, secrets included"), (_PRIVILEGE, 6, "changes privileges or modes"),
        (_SERVE, 7, "starts a server that never exits"),
    )
    python = lang == "python"  # Python is read with ast (rules.python_code): these guesses are for the others
    for pattern, point, what in checks:
        if (not python or pattern is _SERVE) and (m := pattern.search(code)):
            yield hit(inv, point, f"{label} {what} ({m.group(0).strip()})")
    if not python and _ENDLESS.search(code) and not re.search(r"\b(break|exit|return|last)\b", code):
        yield hit(inv, 7, f"{label} loops forever (no break)")
    for m in _SLEEP.finditer(code) if not python else ():
        if float(m.group(2)) > ctx.policy.max_sleep_s:
            yield hit(inv, 7, f"{label} sleeps longer than the {ctx.policy.max_sleep_s} s cap")
    if re.search(r"\binput\s*\(|\bsys\.stdin\.read|\breadline\(\)|\bgets\b|<STDIN>", code) and not stdin_given(inv):
        yield hit(inv, 7, f"{label} waits for a person to type")


def shell_strings(code: str) -> list[str]:
    """The string literals of a snippet that runs shell commands: each is checked as a command."""
    if not _SHELL_OUT.search(code):
        return []
    found = [s for s in string_literals(code) if s.strip()]
    found += [m.group(1) for m in re.finditer(r"`([^`]+)`", code)]
    return found
