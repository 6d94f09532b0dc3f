"""Point 5: network access. The container runs with ``--network none``; a step that needs the
network must be approved for it (a project allow rule with ``network: true``).

Decision: installing packages by name (``pip install requests``, ``npm ci``) needs the network,
so it is a point-5 finding like ``curl``; a project lifts it with an allow rule. Talking to the
loopback interface (``curl localhost:8000``) is not network access and passes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from policy.invocation import Invocation
from policy.rules.base import Context, Hit, hit, show
from policy.rules.packages import Install, install
from policy.tokens import Word
from policy.words import FETCHERS, operands, subcommand

POINT = 5
_OPENSSL_NET = frozenset({"s_client", "s_server", "s_time", "ocsp"})
_CLIENTS = frozenset({"host", "drill", "mtr", "arping",
                      "nc", "ncat", "netcat", "socat", "ssh", "scp", "sftp", "ftp", "tftp", "telnet", "ping",
                      "ping6", "dig", "nslookup", "traceroute", "tracepath", "nmap", "whois", "mosh", "ssh-keyscan",
                      "ssh-copy-id", "gh", "glab", "hub", "twine", "ngrok", "cloudflared", "aws", "gcloud", "az",
                      "kubectl", "heroku", "vercel", "netlify", "fly", "flyctl", "websocat"})
_LOOPBACK = re.compile(r"^(\w+://)?(\[?::1\]?|localhost|127(\.\d+){3}|0\.0\.0\.0)(:\d+)?(/|$)", re.I)
_HOSTLIKE = re.compile(r"://|^[\w.-]+\.[a-z]{2,}(:\d+)?(/|$)|^\d+(\.\d+){3}(:\d+)?(/|$)|^\[?::1\]?|^localhost\b", re.I)
_GIT_REMOTE = frozenset({"clone", "fetch", "pull", "push", "ls-remote", "remote update", "submodule"})
_PUBLISH = re.compile(r"^(npm|pnpm|yarn) publish|^(cargo|poetry|uv|gem|dotnet nuget) (publish|push)"
                      r"|^(docker|podman) (pull|push|login|search)\b|^pip download\b")
_DEV_NET = re.compile(r"^/dev/(tcp|udp)/")
_REMOTE_SPEC = re.compile(r"^[\w.-]+@[\w.-]+:|^[\w-]+(\.[\w-]+)+:|^rsync://")


def check(inv: Invocation, ctx: Context) -> Iterator[Hit]:
    name = inv.name
    targets = [*inv.texts, *(r.target.text for r in inv.cmd.redirects if r.target is not None)]
    if any(_DEV_NET.match(t) for t in targets):
        yield hit(inv, POINT, f"{show(inv)} opens a network socket through /dev/tcp", hold=True)
    if name in FETCHERS:
        hosts = [t for t in inv.texts if _HOSTLIKE.search(t) and not t.startswith("-")]
        if not hosts or not all(_LOOPBACK.match(h) for h in hosts):
            yield hit(inv, POINT, f"{show(inv)} downloads from the network", hold=True)
    elif name in _CLIENTS or (name == "openssl" and inv.texts[:1] and inv.texts[0] in _OPENSSL_NET):
        yield hit(inv, POINT, f"{show(inv)} uses the network", hold=True)
    elif name in ("rsync", "scp") or (name == "git" and _git_remote(inv)):
        if name == "git" or any(_REMOTE_SPEC.match(o.text) for o in operands(inv.args)):
            yield hit(inv, POINT, f"{show(inv)} talks to a remote repository or host", hold=True)
    elif (found := install(inv)) is not None and not _offline(found.args) and not _this_project(found):
        what = f"installs packages from the network ({found.manager} {found.action})"
        yield hit(inv, POINT, f"{show(inv)} {what}", hold=True)
    if _PUBLISH.search(inv.normalized):
        yield hit(inv, POINT, f"{show(inv)} uploads or downloads through the network")


def _this_project(found: Install) -> bool:
    """``pip install -e .``, ``pip install '.[dev]'``: the project itself, as a developer installs it.
    Named packages and requirement files stay held: that is installing packages."""
    if found.manager != "pip" or found.action != "install":
        return False
    ops = [a.text for a in found.args if not a.text.startswith("-")]
    return bool(ops) and all(o == "." or (o.startswith((".[", "./")) and ".." not in o) for o in ops) and not any(
        a.text in ("-r", "--requirement", "-c", "--constraint") or a.text.startswith(("-r", "--requirement="))
        for a in found.args
    )


def _offline(args: list[Word]) -> bool:
    """``pip install --no-index --find-links wheels/ x``, ``npm ci --offline``: no network needed."""
    return any(a.text in ("--no-index", "--offline", "--frozen-offline") for a in args)


def _git_remote(inv: Invocation) -> bool:
    sub, rest = subcommand(inv.args, frozenset({"-C", "-c", "--git-dir", "--work-tree"}))
    if sub == "clone":
        ops = [o.text for o in operands(rest)]
        return bool(ops) and ("://" in ops[0] or _REMOTE_SPEC.match(ops[0]) is not None)
    if sub == "remote":
        return bool(rest) and rest[0].text == "update"
    if sub == "submodule":
        return bool(rest) and rest[0].text in ("update", "add", "sync")
    return sub in _GIT_REMOTE
