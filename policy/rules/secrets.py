"""Point 3: secrets, in what a step writes or runs, and in what it reads or prints.

Three kinds: credentials written out literally (key formats with a recognisable prefix, private
key blocks), files that hold credentials (``.env``, ``~/.ssh``, ``~/.aws/credentials``,
``/proc/self/environ``, ``/etc/shadow``), and dumps of the environment (``env``, ``printenv``,
``echo $GITHUB_TOKEN``), which land in step output that models and logs see.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Sequence

from policy.invocation import Invocation
from policy.parsers.programs import printed_text
from policy.parsers.shell import parse
from policy.rules.base import Context, Hit, hit, show
from policy.tokens import ShellSyntaxError, Word
from policy.words import operands


def fold_printed(word: Word) -> str | None:
    """``"$(printf '.%s' env)"``: a word made of one printf/echo of constants, as it expands."""
    if len(word.subs) != 1:
        return None
    try:
        script = parse(word.subs[0])
    except ShellSyntaxError:
        return None
    if len(script.commands) != 1 or not script.commands[0].words:
        return None
    cmd = script.commands[0]
    if cmd.words[0].text not in ("printf", "echo") or any(w.dynamic for w in cmd.words):
        return None
    printed = printed_text(Invocation(cmd.words[0].text, cmd.words[0], cmd.words[1:], cmd)).strip()
    sub_raw = "$(" + word.subs[0] + ")"
    return word.text.replace(sub_raw, printed) if sub_raw in word.text else printed

POINT = 3
KEY_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"), "an AWS access key"),
    (re.compile(r"aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}", re.I), "an AWS secret key"),
    (re.compile(r"-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----"), "a private key"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"), "a GitHub token"),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}\b"), "a GitHub token"),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b"), "a GitLab token"),
    (re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}"), "an Anthropic API key"),
    (re.compile(r"\bsk-(proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"), "an OpenAI-style API key"),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), "a Google API key"),
    (re.compile(r"\b[rs]k_live_[0-9A-Za-z]{16,}"), "a Stripe live key"),
    (re.compile(r"\bnpm_[A-Za-z0-9]{36}\b"), "an npm token"),
    (re.compile(r"\bpypi-[A-Za-z0-9_-]{50,}"), "a PyPI token"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"), "a JSON web token"),
    (re.compile(r"(Authorization|Proxy-Authorization):\s*(Bearer|Basic|token)\s+(?!\$)[A-Za-z0-9._~+/=-]{16,}", re.I),
     "a literal authorization header"),
)
# Only in commands: in source files these match development defaults (postgres://app:devpass@localhost).
COMMAND_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"://[^/\s:@'\"]+:(?!\$)[^/\s@'\"]{6,}@"), "a password inside a URL"),
)
_SECRET_FILES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(^|/)\.env(\.(?!example\b|sample\b|template\b|dist\b|defaults?\b)[\w.-]+)?$"), ".env file"),
    (re.compile(r"(^|/)\.ssh(/|$)"), "SSH directory"),
    (re.compile(r"(^|/)id_(rsa|dsa|ecdsa|ed25519)$"), "SSH private key"),
    (re.compile(r"(^|/)\.envrc$"), ".envrc file"),
    (re.compile(r"\.(pem|key|p12|pfx|jks|keystore)$"), "key file"),
    (re.compile(r"^/proc/[^/]+/environ$"), "process environment"),
    (re.compile(r"^/etc/(shadow|gshadow|sudoers|master\.passwd)"), "system password file"),
    (re.compile(r"(^|/)\.aws/(credentials|config)$"), "AWS credentials"),
    (re.compile(r"(^|/)\.(netrc|git-credentials|pypirc|pgpass|npmrc|dockercfg)$"), "credentials file"),
    (re.compile(r"(^|/)\.(docker/config\.json|kube/config|config/gh/hosts\.yml)$"), "credentials file"),
    (re.compile(r"(^|/)\.gnupg(/|$)"), "GnuPG keyring"),
    (re.compile(r"(^|/)\.(bash|zsh|python|psql|mysql)_history$"), "shell history"),
    (re.compile(r"^/etc/ssl/private(/|$)"), "TLS private key"),
)
SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|PRIVATE_KEY|CREDENTIAL|ACCESS_KEY|AUTH)", re.I)
_DUMPERS = {"set": (), "export": ("-p",), "declare": ("-p", "-x", "-px", "-xp"), "typeset": ("-p", "-x"),
            "compgen": ("-v", "-e"), "history": ()}
_KEY_EXPORTS = frozenset({"--export-secret-keys", "--export-secret-subkeys", "--export-ssh-key"})


def scan_text(text: str, command: bool = False) -> list[str]:
    """What kinds of literal credentials ``text`` (a command, or a file's content) contains."""
    patterns = KEY_PATTERNS + COMMAND_PATTERNS if command else KEY_PATTERNS
    return list(dict.fromkeys(what for pattern, what in patterns if pattern.search(text)))


def secret_file(text: str, extra: Sequence[str] = ()) -> str | None:
    """What kind of secret file ``text`` names, by the built-in list and a project's own
    ``secret_files`` patterns (``.iter/policy.yaml``); None when it names none."""
    for pattern, what in _SECRET_FILES:
        if pattern.search(text):
            return what
    for own in extra:
        if re.search(own, text):
            return "a secret file by the project's policy"
    return None


# names a glob may match: `cat .env*` reads .env
_SECRET_EXAMPLES = (".env", ".env.local", ".envrc", "id_rsa", "id_ed25519", ".netrc", ".git-credentials", ".pgpass",
                    ".npmrc", ".pypirc", ".aws/credentials", ".ssh/id_rsa")


def secret_glob(pattern: str) -> str | None:
    """A secret file an unquoted glob could expand to."""
    if not any(c in pattern for c in "*?["):
        return None
    for name in _SECRET_EXAMPLES:
        for candidate in (name, f"{pattern.rsplit('/', 1)[0]}/{name}" if "/" in pattern else name):
            if fnmatch.fnmatchcase(candidate, pattern) and (what := secret_file(candidate)):
                return what
    return None


def check(inv: Invocation, ctx: Context) -> Iterator[Hit]:
    # what a command reads: its arguments (but not the destination of cp and friends: writing a
    # .env from .env.example reveals nothing) and its input redirections
    words = list(inv.args)
    if inv.name in ("cp", "install", "ln", "rsync", "tee") and words:
        words = words[:-1] if inv.name != "tee" else []
    if not inv.wrappers:
        words += [r.target for r in inv.cmd.redirects if r.target is not None and r.op in ("<", "<>")]
    for w in words:
        for candidate in (w.text, w.text.split("=", 1)[-1], w.text.lstrip("@<"), w.text.split(":", 1)[-1]):
            own = ctx.policy.secret_files
            if what := secret_file(candidate, own) or (secret_glob(candidate) if w.glob else None):
                yield hit(inv, POINT, f"{show(inv)} touches {w.text!r} ({what})")
                break
        if w.subs and (folded := fold_printed(w)) and (what := secret_file(folded, ctx.policy.secret_files)):
            yield hit(inv, POINT, f"{show(inv)} touches {folded!r}, spelt {w.raw!r} ({what})")
        for name in w.params:
            if SECRET_NAME.search(name):
                yield hit(inv, POINT, f"{show(inv)} expands ${name}, which looks like a secret")
    yield from _dumps(inv)


def _dumps(inv: Invocation) -> Iterator[Hit]:
    name, texts = inv.name, inv.texts
    if name == "env" and not inv.wraps and not any(t in ("-S", "--split-string") for t in texts):
        yield hit(inv, POINT, "`env` with no command prints every environment variable, secrets included")
    elif name == "printenv":
        ops = [o.text for o in operands(inv.args)]
        if not ops:
            yield hit(inv, POINT, "`printenv` prints every environment variable, secrets included")
        elif secret := next((o for o in ops if SECRET_NAME.search(o)), None):
            yield hit(inv, POINT, f"`printenv {secret}` prints a secret")
    elif name in _DUMPERS and (not texts or (len(texts) == 1 and texts[0] in _DUMPERS[name])):
        yield hit(inv, POINT, f"{show(inv)} prints every variable or past command, secrets included")
    elif name == "ps" and any((re.fullmatch(r"-?[a-zA-Z]*e[a-zA-Z]*", t) and not t.startswith("-")) or t == "-E"
                              for t in texts):
        yield hit(inv, POINT, f"{show(inv)} shows the environment of processes, secrets included")
    elif name in ("gpg", "gpg2") and _KEY_EXPORTS & set(texts):
        yield hit(inv, POINT, f"{show(inv)} exports private keys")
