"""Point 7: bounded resources and liveness. A step must finish by itself, without a person.

Blocked: fork bombs (a function that calls itself), loops that never end (``while true`` with no
``break``/``exit``), programs that never exit (servers, ``tail -f``, ``watch``, ``yes``,
``sleep infinity``), programs that wait for a person (editors, pagers, REPLs, ``read``,
``git commit`` with no message), background jobs left running, and timeouts above the cap.
A ``timeout N`` around a never-ending program bounds it, so that passes (within the cap).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

from policy.interpreters import WRAPPERS, skip_options, stdin_script
from policy.invocation import Invocation, ScriptInfo
from policy.rules.base import Context, Hit, hit, show, stdin_given
from policy.words import SHELLS, is_python, long_flags, operands, parse_duration, short_flags, subcommand

POINT = 7
_EDITORS = frozenset({"vim", "vi", "nvim", "nano", "pico", "micro", "joe", "ed", "ex", "emacs", "mg", "kak", "helix",
                      "hx", "less", "more", "most", "man", "htop", "btop", "atop", "iftop", "nmon", "glances", "mc",
                      "ranger", "nnn", "tig", "lazygit", "screen", "tmux", "vimtutor", "crontab", "mutt"})
_REPLS = frozenset({"ipython", "bpython", "ptpython", "node", "deno", "bun", "irb", "pry", "R", "ghci", "lua",
                    "julia", "scala", "jshell", "clojure", "sbcl", "erl", "iex", "psql", "mysql", "mariadb",
                    "sqlite3", "redis-cli", "mongo", "mongosh", "perl", "ruby", "php", "cat"})
_NEVER_ENDING = frozenset({"yes", "nodemon", "entr", "ptw", "pytest-watch", "live-server", "http-server",
                           "webpack-dev-server", "uvicorn", "gunicorn", "hypercorn", "daphne", "waitress-serve",
                           "redis-server", "mongod", "postgres", "httpd", "caddy", "mailhog", "sphinx-autobuild",
                           "watchman", "stress", "stress-ng", "serve"})
_SERVER_PATTERNS = (
    r"^python[0-9.]* (-\S+ )*-m (http\.server|SimpleHTTPServer|uvicorn|gunicorn|flask run|django runserver|"
    r"streamlit run|jupyter|notebook|aiohttp\.web)",
    r"^(python[0-9.]* )?manage\.py runserver", r"^flask( --app \S+)? run", r"^fastapi (dev|run)",
    r"^streamlit run", r"^jupyter(-| )(notebook|lab|server)",
    r"^(npm|pnpm|bun) (run )?(start|dev|serve|watch|preview)\b",
    r"^yarn (run )?(start|dev|serve|watch|preview)\b", r"^(npx )?(next|nuxt|astro|remix|gatsby|ember|expo) "
    r"(dev|start|develop|serve)\b", r"^(npx )?vite( (dev|serve|preview))?( |$)(?!.*\bbuild\b)", r"^(npx )?ng serve",
    r"^(npx )?webpack (serve|--watch|-w)\b", r"^(bundle exec )?rails (s|server)\b", r"^php -S\b",
    r"^php artisan serve", r"^(hugo|mkdocs|jekyll|bundle exec jekyll) (server|serve)\b", r"^hugo serve",
    r"^(docker|podman)( |-)compose( \S+)* up\b(?!.*(\s-d\b|--detach))", r"^cargo watch", r"^go run .*server",
    r"^(npx )?tsc .*(-w\b|--watch)", r"^(npx )?(jest|vitest) .*--watch", r"^tail .*(-f\b|-F\b|--follow)",
    r"^(journalctl|docker logs|kubectl logs) .*(-f\b|--follow)", r"^inotifywait .*(-m\b|--monitor)",
    r"^(nc|ncat|netcat) .*-l", r"^ping (?!.*(-c|-w)\s*\d)", r"^less \+F",
)
_SERVERS = re.compile("|".join(f"(?:{p})" for p in _SERVER_PATTERNS))
_RUNS_COMMANDS = re.compile(r"^(core\.(pager|editor|sshCommand|fsmonitor|hooksPath|askPass)|alias\.[^=]+=!"
                            r"|[\w.-]+\.(cmd|command|helper|textconv|clean|smudge|process)\b)", re.I)
_MAX_FILE_BYTES = 1024**3
_ENDLESS_DEVICES = frozenset({"/dev/zero", "/dev/urandom", "/dev/random"})


def check(inv: Invocation, ctx: Context) -> Iterator[Hit]:
    bounded = inv.timeout_s is not None and inv.timeout_s <= ctx.policy.max_timeout_s
    name, normalized = inv.name, inv.normalized
    if name == "timeout":
        yield from _timeout(inv, ctx)
    elif name == "sleep" and not bounded:
        total = sum(parse_duration(o.text) or math.inf for o in operands(inv.args)) if inv.args else 0
        if total > ctx.policy.max_sleep_s:
            yield hit(inv, POINT, f"{show(inv)} stalls longer than the {ctx.policy.max_sleep_s} s cap")
    asks_help = any(t in ("--help", "-h", "--version", "-V") for t in inv.texts)
    endless = (name in _NEVER_ENDING or name == "watch" or _SERVERS.search(normalized)) and not asks_help
    if endless and not bounded and not (name == "yes" and inv.cmd.pipe_out):
        yield hit(inv, POINT, f"{show(inv)} never exits by itself (a server, watcher or endless output)")
    if name in _EDITORS and not _batch(inv):
        yield hit(inv, POINT, f"{show(inv)} is interactive: it waits for a person")
    elif (name in _REPLS or is_python(name) or name in SHELLS) and _starts_repl(inv):
        yield hit(inv, POINT, f"`{name}` with no script or code waits for input (an interactive session)")
    elif name == "top" and "b" not in short_flags(inv.args):
        yield hit(inv, POINT, "`top` is interactive: use `top -b -n 1`")
    elif name == "git":
        yield from _git(inv)
    elif name in ("docker", "podman", "kubectl") and _interactive_container(inv):
        yield hit(inv, POINT, f"{show(inv)} attaches an interactive terminal")
    elif name == "xargs" and any(a.text in ("-p", "--interactive") for a in inv.args):
        yield hit(inv, POINT, "`xargs -p` asks a person before each command")
    elif name == "find" and any(a.text in ("-ok", "-okdir") for a in inv.args):
        yield hit(inv, POINT, "`find -ok` asks a person before each command")
    if name in ("fallocate", "truncate") and any(_size_bytes(t) > _MAX_FILE_BYTES for t in inv.texts):
        yield hit(inv, POINT, f"{show(inv)} allocates a file of more than 1 GiB")
    if name == "head" and _size_bytes(_flag_value(inv.texts, "-c", "--bytes")) > _MAX_FILE_BYTES:
        yield hit(inv, POINT, f"{show(inv)} writes more than 1 GiB")
    if name == "dd":
        block = _size_bytes(next((t[3:] for t in inv.texts if t.startswith("bs=")), "512"))
        count = next((t[6:] for t in inv.texts if t.startswith("count=")), "")
        if count.isdigit() and block * int(count) > _MAX_FILE_BYTES:
            yield hit(inv, POINT, f"{show(inv)} writes more than 1 GiB")
    if not bounded and not inv.cmd.pipe_out and name in ("cat", "dd"):
        sources = [a.text.removeprefix("if=") for a in inv.args]
        if any(s in _ENDLESS_DEVICES for s in sources) and not any(a.text.startswith("count=") for a in inv.args):
            yield hit(inv, POINT, f"{show(inv)} reads an endless device with no limit")


def _flag_value(texts: list[str], short: str, long: str) -> str:
    for i, t in enumerate(texts):
        if t in (short, long) and i + 1 < len(texts):
            return texts[i + 1]
        if t.startswith(long + "="):
            return t.split("=", 1)[1]
        if t.startswith(short) and len(t) > len(short) and not t.startswith("--"):
            return t[len(short) :]
    return ""


def check_script(info: ScriptInfo, ctx: Context) -> Iterator[Hit]:
    invs = info.invocations
    by_index: dict[int, list[Invocation]] = {}
    for inv in invs:
        by_index.setdefault(inv.cmd.index, []).append(inv)
    bounded = bool(invs) and all(i.timeout_s is not None and i.timeout_s <= ctx.policy.max_timeout_s for i in invs)
    for fname, (start, end) in info.script.functions.items():
        if any(i.name == fname for k in range(start, end) for i in by_index.get(k, [])):
            yield Hit(POINT, f"function {fname!r} calls itself: a fork bomb or endless recursion")
    for loop in info.script.loops:
        body = [i for k in range(loop.cond_end, loop.end) for i in by_index.get(k, [])]
        cond = [i for k in range(loop.start, loop.cond_end) for i in by_index.get(k, [])]
        if loop.kind == "select":
            yield Hit(POINT, "`select` shows a menu and waits for a person")
        elif _endless(loop.kind, loop.header, cond) and not bounded and not any(
            i.name in ("break", "exit", "return") for i in body
        ):
            yield Hit(POINT, f"this `{loop.kind}` loop never ends (no break or exit)")
        for i in cond:
            if i.name == "read" and not (loop.stdin_redirected or stdin_given(i) or _has_timeout(i)):
                yield hit(i, POINT, "`read` waits for a person to type")
    in_loop_cond = {k for loop in info.script.loops for k in range(loop.start, loop.cond_end)}
    for inv in invs:
        if inv.name == "read" and inv.cmd.index not in in_loop_cond and not (stdin_given(inv) or _has_timeout(inv)):
            yield hit(inv, POINT, "`read` waits for a person to type")
    waits = any(i.name in ("wait", "kill") for i in invs)
    for inv in invs:
        if inv.cmd.background and not waits and not inv.wraps and inv.name:
            yield hit(inv, POINT, f"{show(inv)} runs in the background (&) and would outlive the step")


def _timeout(inv: Invocation, ctx: Context) -> Iterator[Hit]:
    rest = skip_options(inv.args, WRAPPERS["timeout"])
    seconds = parse_duration(rest[0].text) if rest else None
    if seconds is None:
        yield hit(inv, POINT, f"{show(inv)} has a duration the rules cannot read")
    elif seconds > ctx.policy.max_timeout_s:
        yield hit(inv, POINT, f"{show(inv)} allows more than the {ctx.policy.max_timeout_s} s cap")


def _batch(inv: Invocation) -> bool:
    texts = inv.texts
    if inv.name == "emacs":
        return any(t in ("--batch", "-batch", "--script") for t in texts)
    if inv.name in ("vim", "vi", "nvim", "ex"):
        return any(t in ("-es", "-Es", "--headless") for t in texts)
    if inv.name in ("tmux", "screen"):  # detached sessions outlive the step, attached ones wait for a person
        return any(t in ("kill-server", "kill-session", "ls", "list-sessions", "-ls", "-list") for t in texts)
    if inv.name == "crontab":
        return "-e" not in texts
    if inv.name in ("less", "more", "most", "man"):
        return inv.cmd.pipe_out
    return False


def _starts_repl(inv: Invocation) -> bool:
    """An interpreter or database client with nothing to run: it waits for a person to type."""
    if stdin_given(inv):
        return False
    texts = inv.texts
    if inv.name in ("psql", "mysql", "mariadb", "mongo", "mongosh"):
        return not any(t.startswith(("-c", "-e", "-f", "--command", "--execute", "--file", "--eval")) for t in texts)
    if inv.name == "sqlite3":
        return len(operands(inv.args)) <= 1
    if inv.name == "redis-cli":
        return not operands(inv.args)
    if inv.name == "php":
        return "-a" in texts
    if inv.name == "cat":
        return not operands(inv.args)
    if inv.name in ("ipython", "bpython", "ptpython", "irb", "pry", "R", "ghci", "julia", "scala", "jshell",
                    "clojure", "sbcl", "erl", "iex"):
        return not texts or texts == ["-i"]
    return stdin_script(inv)


def _git(inv: Invocation) -> Iterator[Hit]:
    sub, rest = subcommand(inv.args, frozenset({"-C", "-c", "--git-dir", "--work-tree"}))
    flags, longs = short_flags(rest), long_flags(rest)
    if sub == "commit" and not (flags & {"m", "F", "C"} or longs & {"--message", "--file", "--reuse-message",
                                                                     "--no-edit", "--fixup", "--squash"}):
        yield hit(inv, POINT, "`git commit` without -m opens an editor and waits")
    elif sub in ("rebase", "add", "checkout", "reset", "stash", "clean", "restore") and (
        flags & {"i", "p"} or longs & {"--interactive", "--patch"}
    ):
        yield hit(inv, POINT, f"`git {sub}` in interactive mode waits for a person")
    elif sub == "tag" and "a" in flags and not flags & {"m", "F"}:
        yield hit(inv, POINT, "`git tag -a` without -m opens an editor and waits")
    elif any(_RUNS_COMMANDS.match(s) for s in _git_settings(inv.texts, sub, [o.text for o in operands(rest)])):
        yield hit(inv, POINT, f"{show(inv)} sets a git option that runs commands the rules cannot check")


def _git_settings(texts: list[str], sub: str, ops: list[str]) -> list[str]:
    """``git -c key=value ...`` and ``git config key value``, as key=value."""
    settings = [texts[i + 1] for i, t in enumerate(texts[:-1]) if t == "-c"]
    if sub == "config" and ops:
        settings.append(f"{ops[0]}={ops[1] if len(ops) > 1 else ''}")
    return settings


def _interactive_container(inv: Invocation) -> bool:
    sub, rest = subcommand(inv.args, frozenset({"-H", "--host", "--context", "-c", "--config"}))
    if sub not in ("run", "exec", "attach"):
        return False
    flags, longs = short_flags(rest), long_flags(rest)
    return sub == "attach" or {"i", "t"} <= flags or {"--interactive", "--tty"} <= longs


def _size_bytes(text: str) -> float:
    """``100G``, ``5M``, ``1T`` as bytes; 0 for anything that is not a size."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGTP]i?B?)", text, re.I)
    return float(m.group(1)) * 1024 ** ("KMGTP".index(m.group(2)[0].upper()) + 1) if m else 0.0


def _has_timeout(inv: Invocation) -> bool:
    return any(a.text.startswith("-t") for a in inv.args)


def _endless(kind: str, header: str, cond: list[Invocation]) -> bool:
    """``while true``, ``while :``, ``while sleep 1``, ``while [ 1 ]``, ``until false``, ``for ((;;))``."""
    if kind == "for":
        return re.fullmatch(r"\(\(\s*[^;]*;\s*;[^)]*\)\)", header.strip()) is not None
    if len(cond) != 1:
        return False
    name, args = cond[0].name, cond[0].args
    if kind == "until":
        return name == "false" and not args
    if name in ("true", ":") and not args:
        return True
    if name == "sleep":
        return True
    if name in ("[", "[[", "test"):
        inner = [w for w in args if w.text not in ("]", "]]")]
        return len(inner) == 1 and not inner[0].dynamic and bool(inner[0].text) and not inner[0].text.startswith("-")
    return False
