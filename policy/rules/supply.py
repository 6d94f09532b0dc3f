"""Point 4: dependencies come from the project's usual, trusted sources only.

Blocked: packages installed from a URL, a git remote or a file server rather than by name; extra
or replaced package indexes and trusted hosts; switched-off checksums; and code downloaded and
run in one go (``curl ... | sh``, ``bash <(curl ...)``, ``curl -o x.sh ... && sh x.sh``).
Installing by name needs the network, which point 5 governs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from policy.interpreters import stdin_script
from policy.invocation import Invocation, ScriptInfo
from policy.rules.base import Context, Hit, hit, show
from policy.rules.packages import install
from policy.words import FETCHERS, SHELLS, is_interpreter, is_python, operands

POINT = 4
_SOURCE_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--trusted-host", "--find-links", "-f", "--registry",
                   "--source", "--index", "--default-index", "--extra-index", "--channel", "-c", "--repo",
                   "--allow-insecure-host", "--allow-unauthenticated")
_ALWAYS_BAD_OPTIONS = ("--extra-index-url", "--trusted-host", "--allow-insecure-host", "--allow-unauthenticated",
                       "--index-url", "--registry", "--default-index", "--extra-index")
_REMOTE = re.compile(r"^(git\+|hg\+|svn\+|bzr\+|git://|git@|github:|gitlab:|bitbucket:|gist:)|://")
_NPM_GIT_SHORTHAND = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(#\S+)?$")
_ENV_SOURCES = re.compile(r"^(PIP_(EXTRA_)?INDEX_URL|PIP_TRUSTED_HOST|PIP_FIND_LINKS|PIP_CONFIG_FILE"
                          r"|UV_(EXTRA_)?INDEX_URL|UV_INDEX|UV_FIND_LINKS|NPM_CONFIG_REGISTRY|NPM_CONFIG_USERCONFIG|YARN_REGISTRY"
                          r"|YARN_NPM_REGISTRY_SERVER|BUN_CONFIG_REGISTRY|POETRY_REPOSITORIES_\w+|CARGO_REGISTRIES_\w+"
                          r"|GOPROXY|GONOSUMDB|GONOSUMCHECK|GOINSECURE|GOPRIVATE|GOSUMDB|GOFLAGS)=", re.I)
_REMOTE_RUN = re.compile(r"^(deno (run|install|eval)\b.*\s(https?|npm|jsr):|go (run|install) \S*[\w.-]+\.[a-z]{2,}/\S*@"
                         r"|bunx? \S*https?:|npx \S*https?:|pipx run\b|uvx\b|uv tool run\b)")
_CONFIG = re.compile(r"^(npm|pnpm|yarn) config set (registry|strict-ssl)|^pip config set \S*(index-url|trusted-host)"
                     r"|^(git) config .*url\..*insteadOf|^gem sources (-a|--add)")


def check(inv: Invocation, ctx: Context) -> Iterator[Hit]:
    for assign in inv.cmd.assigns:
        if _ENV_SOURCES.match(assign.text):
            yield hit(inv, POINT, f"sets {assign.text.split('=', 1)[0]}, changing where packages come from")
    for assign in (a for a in inv.args if inv.name == "env" and "=" in a.text):
        if _ENV_SOURCES.match(assign.text):
            yield hit(inv, POINT, f"sets {assign.text.split('=', 1)[0]}, changing where packages come from")
    if _CONFIG.search(inv.normalized):
        yield hit(inv, POINT, f"{show(inv)} changes where packages come from")
    if _REMOTE_RUN.search(inv.normalized):
        yield hit(inv, POINT, f"{show(inv)} fetches code and runs it unreviewed")
    found = install(inv)
    if found is not None:
        texts = [a.text for a in found.args]
        for i, t in enumerate(texts):
            opt, _, attached = t.partition("=")
            value = attached or (texts[i + 1] if i + 1 < len(texts) else "")
            if opt in _ALWAYS_BAD_OPTIONS or (opt in _SOURCE_OPTIONS and "://" in value):
                yield hit(inv, POINT, f"{show(inv)} installs from a non-default source ({opt} {value})".rstrip())
                break
        values = {texts[i + 1] for i, t in enumerate(texts[:-1]) if t in _SOURCE_OPTIONS}
        for op in operands(found.args):
            if op.text in values:
                continue  # reported above as a source option
            if _REMOTE.search(op.text) or (found.manager in ("npm", "yarn", "pnpm", "bun")
                                           and _NPM_GIT_SHORTHAND.match(op.text)):
                yield hit(inv, POINT, f"{show(inv)} installs {op.text!r} from a URL or repository, not a registry")
    for word in inv.args:
        if word.raw.startswith("<(") and any(_fetches(s) for s in word.subs) and (
            is_interpreter(inv.name) or inv.name in ("source", ".")
        ):
            yield hit(inv, POINT, f"`{inv.name}` runs code downloaded by {word.raw[:60]!r}")


def check_script(info: ScriptInfo, ctx: Context) -> Iterator[Hit]:
    fetchers = [i for i in info.invocations if i.name in FETCHERS]
    if not fetchers:
        return
    for inv in info.invocations:
        if inv.cmd.pipe_in and stdin_script(inv):
            yield hit(fetchers[0], POINT, f"pipes a download into `{inv.name}` (curl | sh): unreviewed code")
            return
    downloaded = {_output_name(f) for f in fetchers} - {None}
    for inv in info.invocations:
        target = inv.args[0].text if inv.name in SHELLS | {"source", "."} and inv.args else (
            inv.argv0.text if inv.argv0 is not None else "")
        if is_python(inv.name) and inv.args:
            target = inv.args[0].text
        if target and target.lstrip("./") in {d.lstrip("./") for d in downloaded if d}:
            yield hit(fetchers[0], POINT, f"downloads {target!r} and runs it: unreviewed code")
            return


def _output_name(inv: Invocation) -> str | None:
    texts = inv.texts
    for i, t in enumerate(texts):
        if t in ("-o", "--output", "-O", "--output-document") and i + 1 < len(texts):
            if t == "-O" and inv.name == "curl":
                continue
            return texts[i + 1]
        if t.startswith(("--output=", "--output-document=")):
            return t.split("=", 1)[1]
    if inv.name == "wget" or "-O" in texts or "--remote-name" in texts:
        urls = [t for t in texts if "://" in t]
        return urls[-1].rstrip("/").rsplit("/", 1)[-1] if urls else None
    return None


def _fetches(src: str) -> bool:
    return bool(re.search(r"\b(curl|wget|fetch|aria2c|http|https)\b", src))
