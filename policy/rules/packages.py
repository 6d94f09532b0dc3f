"""Recognises package-manager commands that fetch packages (shared by points 4, 5 and 6).

``install(inv)`` answers: is this a fetch of packages, by which manager, with which arguments?
``pip install x``, ``python -m pip install x``, ``uv pip install x``, ``npm i``, ``yarn``,
``cargo add``, ``go get``, ``apt-get install``... Listing and freezing (``pip list``) are not.
"""

from __future__ import annotations

from dataclasses import dataclass

from policy.invocation import Invocation
from policy.tokens import Word
from policy.words import is_python

# manager -> subcommands that download packages ("" means: the bare command installs, as `yarn`)
_FETCHING: dict[str, frozenset[str]] = {
    "pip": frozenset({"install", "download", "wheel"}),
    "uv": frozenset({"add", "sync", "lock", "run --with"}),
    "poetry": frozenset({"add", "install", "update", "lock", "self"}),
    "pipenv": frozenset({"install", "sync", "update", "lock"}),
    "pipx": frozenset({"install", "run", "inject", "upgrade"}),
    "conda": frozenset({"install", "create", "update"}), "mamba": frozenset({"install", "create", "update"}),
    "micromamba": frozenset({"install", "create", "update"}),
    "easy_install": frozenset({""}),
    "npm": frozenset({"install", "i", "add", "ci", "update", "up", "upgrade", "exec", "x", "install-test", "it"}),
    "yarn": frozenset({"", "install", "add", "upgrade", "up", "dlx"}),
    "pnpm": frozenset({"install", "i", "add", "update", "up", "dlx", "fetch"}),
    "bun": frozenset({"install", "i", "add", "update", "x"}),
    "gem": frozenset({"install", "update"}), "bundle": frozenset({"install", "update", "add"}),
    "cargo": frozenset({"install", "add", "fetch", "update"}),
    "go": frozenset({"get", "install", "mod download", "mod tidy"}),
    "composer": frozenset({"install", "require", "update"}),
    "dotnet": frozenset({"add", "restore"}), "nuget": frozenset({"install", "restore"}),
    "cpan": frozenset({""}), "cpanm": frozenset({""}), "luarocks": frozenset({"install"}),
    "brew": frozenset({"install", "upgrade", "update", "tap", "reinstall"}),
    "apt": frozenset({"install", "update", "upgrade", "full-upgrade", "dist-upgrade", "reinstall", "build-dep"}),
    "apt-get": frozenset({"install", "update", "upgrade", "dist-upgrade", "reinstall", "build-dep", "source"}),
    "aptitude": frozenset({"install", "update", "upgrade"}),
    "yum": frozenset({"install", "update", "upgrade", "groupinstall", "reinstall"}),
    "dnf": frozenset({"install", "update", "upgrade", "groupinstall", "reinstall"}),
    "zypper": frozenset({"install", "in", "update", "up", "refresh"}),
    "apk": frozenset({"add", "update", "upgrade"}), "pacman": frozenset({"-S", "-Sy", "-Syu", "-Su", "-Syy"}),
    "snap": frozenset({"install", "refresh"}), "flatpak": frozenset({"install", "update"}),
    "npx": frozenset(), "uvx": frozenset({"*"}), "bunx": frozenset(),
}
SYSTEM_MANAGERS = frozenset({"apt", "apt-get", "aptitude", "yum", "dnf", "zypper", "apk", "pacman", "snap", "flatpak"})
_VALUE_OPTIONS = frozenset({"-C", "--prefix", "--cwd", "--dir", "-w", "--workspace", "--filter", "-p", "--project"})


@dataclass(frozen=True)
class Install:
    manager: str
    action: str
    args: list[Word]  # what follows the action


def install(inv: Invocation) -> Install | None:
    name, args = inv.name, list(inv.args)
    if is_python(name) and len(args) >= 2 and args[0].text == "-m" and args[1].text in ("pip", "pip3"):
        name, args = "pip", args[2:]
    elif name.startswith("pip") and name[3:].replace(".", "").isdigit():
        name = "pip"
    if name == "uv" and args[:1] and args[0].text == "pip":
        name, args = "pip", args[1:]
    elif name == "uv" and args[:1] and args[0].text == "tool":
        name, args = "pipx", args[1:]
    if name not in _FETCHING:
        return None
    if name in ("npx", "bunx"):
        return _npx(name, args)
    if name == "uvx":
        return Install(name, "run", args)
    if name == "pacman":
        flag = next((a.text for a in args if a.text.startswith("-S")), None)
        return Install(name, flag, args) if flag else None
    i = 0
    while i < len(args) and args[i].text.startswith("-"):
        i += 2 if args[i].text in _VALUE_OPTIONS else 1
    action = args[i].text if i < len(args) else ""
    rest = args[i + 1 :]
    if action in ("mod",) and rest:
        action, rest = f"mod {rest[0].text}", rest[1:]
    if action == "run" and name == "uv" and any(a.text.startswith("--with") for a in rest):
        action = "run --with"
    if action in _FETCHING[name]:
        return Install(name, action or "install", rest)
    return None


def _npx(name: str, args: list[Word]) -> Install | None:
    """``npx jest`` runs a local binary; ``npx -y pkg`` or ``npx pkg@1.2`` downloads one."""
    texts = [a.text for a in args]
    first_at = next((i for i, t in enumerate(texts) if not t.startswith("-")), len(texts))
    own = texts[:first_at]  # npx's options; what follows belongs to the command it runs
    fetching = any(t in ("-y", "--yes", "-p", "--package") or t.startswith("--package=") for t in own)
    first = texts[first_at] if first_at < len(texts) else ""
    if fetching or "@" in first.lstrip("@") or first.startswith("create-"):
        return Install(name, "run", args)
    return None
