"""Python that a step runs (``python -c``, a here-document fed to python, or a ``.py`` file the
plan writes and a later step runs), judged from what ``policy.parsers.python`` resolved.

Blocked: deleting broad trees, writes outside the workspace or into .git, secret files, the whole
environment printed, pip's internals, the Docker API, forks in a loop, loops with no way out,
privilege changes. Held: the network, a narrow tree deletion, and everything the reader could not
resolve (a call or a command built at run time, exec of a computed string): never fine unseen.
"""

from __future__ import annotations

from collections.abc import Iterator

from policy.invocation import Invocation
from policy.parsers.python import UNKNOWN, PyCall, PyFacts, Value
from policy.paths import path_problem
from policy.rules.base import Context, Hit, hit
from policy.rules.secrets import secret_file

NETWORK_MODULES = ("urllib", "http.client", "socket", "requests", "httpx", "aiohttp", "urllib3", "ftplib",
                   "smtplib", "telnetlib", "paramiko", "websocket", "websockets", "xmlrpc.client", "asyncssh",
                   "pycurl", "http.server", "socketserver")
_TREE_DELETERS = frozenset({"shutil.rmtree", "os.removedirs", "distutils.dir_util.remove_tree"})
_BROAD = frozenset({"/", ".", "./", "..", "~", "~/", "*", "$HOME", "", "src", "tests", ".git"})
_WRITE_METHODS = frozenset({"write_text", "write_bytes", "touch", "mkdir", "symlink_to", "hardlink_to", "chmod"})
_COPIERS = frozenset({"shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.move", "shutil.copytree",
                      "os.rename", "os.replace", "os.symlink", "os.link"})
_PRIVILEGE = frozenset({"os.setuid", "os.seteuid", "os.setreuid", "os.setresuid", "os.setgid", "os.setegid",
                        "os.setregid", "os.setresgid", "os.chown", "os.lchown", "shutil.chown", "os.chroot"})
_FORKS = frozenset({"os.fork", "os.forkpty", "multiprocessing.Process", "threading.Thread"})
MAX_UNKNOWN_SHOWN = 3


def check(facts: PyFacts, label: str, inv: Invocation, ctx: Context) -> Iterator[Hit]:
    if facts.error:
        yield hit(inv, 7, f"{label} cannot be read as Python ({facts.error})", hold=True)
        return
    for reason in facts.unknown[:MAX_UNKNOWN_SHOWN]:
        yield hit(inv, 7, f"{label}: {reason}", hold=True)
    for line in facts.env_dumps[:1]:
        yield hit(inv, 3, f"{label} prints the whole environment, secrets included (line {line})")
    for line in facts.endless[:1]:
        yield hit(inv, 7, f"{label} loops forever with no break (line {line})")
    net = sorted({m for m in facts.modules if _network(m)} | {c.name for c in facts.calls if _network(c.name)})
    if net:
        yield hit(inv, 5, f"{label} uses the network ({', '.join(net[:3])})", hold=True)
    if any(m == "pip" or m.startswith("pip.") for m in facts.modules) or any(
        c.name.startswith("pip.") for c in facts.calls
    ):
        yield hit(inv, 4, f"{label} calls pip's internals: packages installed with no review")
    for call in facts.calls:
        yield from _call(call, label, inv, ctx)


def _network(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in NETWORK_MODULES)


def _call(call: PyCall, label: str, inv: Invocation, ctx: Context) -> Iterator[Hit]:
    name, where = call.name, f"{label}, line {call.line}"
    texts = [v for v in (*call.args, *call.kwargs.values(), call.receiver) if isinstance(v, str)]
    for text in texts:
        if len(text) < 300 and (what := secret_file(text, ctx.policy.secret_files)):
            yield hit(inv, 3, f"{where} touches {text!r} ({what})")
            return
        if "docker.sock" in text or ":2375" in text or ":2376" in text:
            yield hit(inv, 6, f"{where} talks to the Docker API, which is root on the host")
            return
    if any(v in (2375, 2376) for v in (*call.args, *call.kwargs.values()) if isinstance(v, int)):
        yield hit(inv, 6, f"{where} talks to the Docker API (port 2375/2376), which is root on the host")
        return
    if name in _TREE_DELETERS or name.endswith(("Path().rmtree", ".rmtree")):
        target = call.args[0] if call.args else call.receiver
        yield from _tree(target, where, inv, ctx)
    elif name == "open" or name.endswith("Path().open") or (name.endswith(".open") and call.receiver is not UNKNOWN):
        path = call.args[0] if name == "open" and call.args else call.receiver
        mode = call.args[1] if name == "open" and len(call.args) > 1 else call.kwargs.get("mode", "r")
        if name != "open":
            mode = call.args[0] if call.args else call.kwargs.get("mode", "r")
        if isinstance(mode, str) and any(c in mode for c in "wax+"):
            yield from _write(path, where, inv, ctx)
    elif name.rsplit(".", 1)[-1] in _WRITE_METHODS and ("Path" in name or isinstance(call.receiver, str)):
        yield from _write(call.receiver, where, inv, ctx)
    elif name in _COPIERS and len(call.args) > 1:
        yield from _write(call.args[1], where, inv, ctx)
    elif name in ("os.remove", "os.unlink", "os.rmdir") and call.args:
        yield from _write(call.args[0], where, inv, ctx)
    elif name in _PRIVILEGE:
        yield hit(inv, 6, f"{where} changes users, owners or the root (`{name}`)")
    elif name in ("os.chmod", "pathlib.Path().chmod") and len(call.args) > 1:
        mode = call.args[1] if name == "os.chmod" else call.args[0]
        if isinstance(mode, int) and (mode & 0o7000 or mode & 0o002):
            yield hit(inv, 6, f"{where} makes a file world-writable or setuid (mode {oct(mode)})")
    elif name in _FORKS and call.in_loop:
        yield hit(inv, 7, f"{where} starts processes in a loop (`{name}`): a fork bomb")
    elif name == "time.sleep" and _number(call.args) > ctx.policy.max_sleep_s:
        yield hit(inv, 7, f"{where} sleeps longer than the {ctx.policy.max_sleep_s} s cap")


def _number(args: list[Value]) -> float:
    first = args[0] if args else None
    return float(first) if isinstance(first, int | float) and not isinstance(first, bool) else 0.0


def _tree(target: Value, where: str, inv: Invocation, ctx: Context) -> Iterator[Hit]:
    if not isinstance(target, str):
        yield hit(inv, 2, f"{where} deletes a directory tree whose path is only known at run time", hold=True)
        return
    clean = target.rstrip("/") or "/"
    outside = next((r for r in (path_problem(target, c, ctx.root, write=True) for c in inv.cwds) if r), None)
    if outside:
        yield hit(inv, 1, f"{where} deletes {outside}")
    elif clean in _BROAD or "*" in clean:
        yield hit(inv, 2, f"{where} deletes {target!r}, a whole tree of the workspace")
    else:
        yield hit(inv, 2, f"{where} deletes the directory tree {target!r}", hold=True)


def _write(target: Value, where: str, inv: Invocation, ctx: Context) -> Iterator[Hit]:
    if not isinstance(target, str):
        return  # a path computed at run time: the container keeps it inside; nothing to name
    reason = next((r for r in (path_problem(target, c, ctx.root, write=True) for c in inv.cwds) if r), None)
    if reason:
        yield hit(inv, 1, f"{where} writes {reason}")
    elif target.startswith((".iter/", "./.iter/")) or target == ".iter":
        yield hit(inv, 1, f"{where} writes into .iter/, iter's own configuration")
