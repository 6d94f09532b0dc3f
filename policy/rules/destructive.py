"""Point 2: operations that destroy data or state and cannot be undone.

``rm -rf`` is blocked in every spelling (``-r -f``, ``-fr``, ``--recursive --force``, ``/bin/rm``,
``\\rm``): the lexer and the wrappers already reduce those to name ``rm`` and flags {r, f}. A plain
``rm file`` is an ordinary edit and passes; ``rm -r`` passes only on a narrow target.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from policy.invocation import Invocation, ScriptInfo
from policy.rules.base import Context, Hit, hit, show
from policy.words import has_long, long_flags, operands, short_flags, subcommand

POINT = 2
_BROAD = frozenset({"/", "/*", ".", "./", "./*", "..", "../", "*", ".*", "~", "~/", "$HOME", "${HOME}", ".git"})
_DISK_TOOLS = frozenset({"mkfs", "mke2fs", "mkswap", "fdisk", "sfdisk", "cfdisk", "gdisk", "sgdisk", "parted",
                         "wipefs", "blkdiscard", "shred", "badblocks"})
_POWER = frozenset({"shutdown", "reboot", "halt", "poweroff", "killall", "pkill", "killall5"})
_DEVICE = re.compile(r"^/dev/(sd|hd|vd|xvd|nvme|mmcblk|disk|mapper/|md|loop|dm-|mem$|kmem$|port$)")
_DB_CLIENTS = frozenset({"psql", "mysql", "mariadb", "sqlite3", "sqlcmd", "duckdb", "clickhouse-client", "cockroach",
                         "mongo", "mongosh", "redis-cli"})
_SQL_DESTROY = re.compile(
    r"\b(DROP\s+(TABLE|DATABASE|SCHEMA|INDEX|VIEW|USER|ROLE)|TRUNCATE\s+(TABLE\s+)?\w|DELETE\s+FROM\s+[\w.\"`]+\s*(;|$|\))"
    r"|dropDatabase\s*\(|\.drop\s*\(|FLUSHALL|FLUSHDB)",
    re.I,
)
_FORCE_PUSH = ("--force", "--force-with-lease", "--mirror", "--delete")
_FIND_FILTERS = frozenset({"-name", "-iname", "-path", "-ipath", "-wholename", "-regex", "-iregex", "-newer",
                           "-mtime", "-mmin", "-atime", "-amin", "-ctime", "-cmin", "-size", "-empty", "-user",
                           "-perm", "-samefile", "-inum", "-links"})
_FRAMEWORK = (
    (re.compile(r"^(python[0-9.]* )?(manage\.py|django-admin) (flush|reset_db|sqlflush)\b"), "empties the database"),
    (re.compile(r"^(bundle exec )?(rails|rake) db:(drop|reset|purge)\b"), "drops the database"),
    (re.compile(r"^(npx )?prisma migrate reset\b"), "drops and recreates the database"),
    (re.compile(r"^alembic downgrade base\b"), "undoes every migration"),
    (re.compile(r"^(dropdb|mysqladmin( -\S+)* drop)\b"), "drops a database"),
    (re.compile(r"^crontab( -\S+)* -r\b"), "deletes the crontab"),
    (re.compile(r"^(docker|podman) (system prune|volume (rm|prune)|image prune -a)"), "deletes container data"),
    (re.compile(r"^systemctl (poweroff|reboot|halt|kexec)\b|^init [06]$"), "stops the machine"),
)


def check(inv: Invocation, ctx: Context) -> Iterator[Hit]:
    name, args = inv.name, inv.args
    if not inv.wrappers:
        for r in inv.cmd.redirects:
            if r.target is not None and r.op not in ("<", "<<", "<<-", "<<<") and _DEVICE.match(r.target.text):
                yield hit(inv, POINT, f"writes straight to the device {r.target.text}")
    if name == "rm":
        yield from _rm(inv)
    elif name == "git":
        yield from _git(inv)
    elif name == "find":
        yield from _find(inv)
    elif name == "rsync" and any(t.startswith(("--delete", "--remove-source-files")) for t in inv.texts):
        dest = operands(args)[-1].text if operands(args) else ""
        broad = dest.rstrip("/") in ("", ".", "..", "~", "$HOME", "/") or dest.startswith(("/", "~", ".."))
        yield hit(inv, POINT, f"{show(inv)} deletes files in {dest or 'the destination'} that the source lacks",
                  hold=not broad)
    elif name.split(".")[0] in _DISK_TOOLS:
        yield hit(inv, POINT, f"{show(inv)} wipes or reformats data irrecoverably")
    elif name == "dd":
        for a in args:
            if a.text.startswith("of=/dev/") and a.text[3:] not in ("/dev/null", "/dev/stdout", "/dev/stderr"):
                yield hit(inv, POINT, f"{show(inv)} writes straight to a device")
    elif name == "truncate" and any(o.text.startswith(("/", "~")) for o in operands(args)):
        yield hit(inv, POINT, f"{show(inv)} empties a file outside the workspace")
    elif name in ("mv", "cp") and args and args[-1].text == "/dev/null":
        yield hit(inv, POINT, f"{show(inv)} throws files away")
    elif name in _POWER:
        yield hit(inv, POINT, f"{show(inv)} kills processes or stops the machine")
    elif name == "kill" and args and args[-1].text in ("-1", "1"):
        yield hit(inv, POINT, f"{show(inv)} kills every process, or init")
    for pattern, what in _FRAMEWORK:
        if pattern.search(inv.normalized):
            yield hit(inv, POINT, f"{show(inv)} {what}")


def check_script(info: ScriptInfo, ctx: Context) -> Iterator[Hit]:
    """SQL that drops or empties tables, wherever it sits (argument, echo | psql, here-document)."""
    clients = [i for i in info.invocations if i.name in _DB_CLIENTS]
    if not clients:
        return
    for inv in info.invocations:
        texts = [*inv.texts, *(r.heredoc or (r.target.text if r.op == "<<<" and r.target else "")
                               for r in inv.cmd.redirects)]
        for text in texts:
            if m := _SQL_DESTROY.search(text):
                yield hit(clients[0], POINT, f"runs destructive SQL `{m.group(0).strip()}`")
                return


def _rm(inv: Invocation) -> Iterator[Hit]:
    flags, longs = short_flags(inv.args), long_flags(inv.args)
    recursive = bool(flags & {"r", "R"}) or has_long(inv.args, "--recursive")
    force = "f" in flags or has_long(inv.args, "--force")
    targets = operands(inv.args)
    broad = any(t.text in _BROAD or t.tilde or t.dynamic or t.glob or t.text.startswith("/") for t in targets)
    if recursive and force:
        # a narrow, known target (rm -rf build) is plausibly cleanup: a person decides
        narrow = not broad and bool(targets)
        yield hit(inv, POINT, f"{show(inv)} deletes recursively and without asking (rm -rf)", hold=narrow)
    elif "--no-preserve-root" in longs:
        yield hit(inv, POINT, f"{show(inv)} disables the protection of /")
    elif any(t.text in _BROAD or t.tilde or (t.dynamic and t.text.startswith("$")) for t in targets):
        yield hit(inv, POINT, f"{show(inv)} deletes a whole directory or everything a glob matches")


def _git(inv: Invocation) -> Iterator[Hit]:
    sub, rest = subcommand(inv.args, frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace"}))
    flags, longs, ops = short_flags(rest), long_flags(rest), [o.text for o in operands(rest)]
    reason = None
    if sub == "reset" and has_long(rest, "--hard"):
        reason = "discards all uncommitted work (git reset --hard)"
    elif sub == "clean" and ("f" in flags or has_long(rest, "--force")) and not ("n" in flags or "--dry-run" in longs):
        reason = "deletes untracked files (git clean -f)"
    elif sub == "push" and ("f" in flags or "d" in flags or any(o.startswith(("+", ":")) for o in ops)
                            or any(has_long(rest, n) for n in _FORCE_PUSH)):
        reason = "rewrites or deletes remote history (forced push)"
    elif sub == "checkout" and ("f" in flags or "--force" in longs or "." in ops or ":/" in ops):
        reason = "discards uncommitted changes (git checkout .)"
    elif sub == "restore" and ("." in ops or ":/" in ops) and not ("--staged" in longs and "--worktree" not in longs):
        reason = "discards uncommitted changes (git restore .)"
    elif sub == "switch" and ("f" in flags or longs & {"--force", "--discard-changes"}):
        reason = "discards uncommitted changes (git switch --force)"
    elif sub == "branch" and ("D" in flags or ("d" in flags and ("f" in flags or "--force" in longs))):
        reason = "deletes a branch that may not be merged"
    elif sub == "stash" and ops[:1] in (["clear"], ["drop"]):
        reason = "throws stashed work away"
    elif sub == "rm" and (flags & {"r", "R"}) and ("f" in flags or "--force" in longs) and "--cached" not in longs:
        reason = "deletes files recursively and forcibly (git rm -rf)"
    elif sub in ("filter-branch", "filter-repo") or (sub == "reflog" and ops[:1] == ["expire"]):
        reason = "rewrites repository history"
    elif sub == "update-ref" and "d" in flags:
        reason = "deletes a ref"
    elif sub == "gc" and any(a.text.startswith("--prune=now") for a in rest):
        reason = "prunes unreachable commits for good"
    if reason:
        yield hit(inv, POINT, f"{show(inv)} {reason}")


def _find(inv: Invocation) -> Iterator[Hit]:
    texts = inv.texts
    runs_rm = any(t in ("-exec", "-execdir", "-ok", "-okdir") and nxt in ("rm", "unlink", "shred", "truncate")
                  for t, nxt in zip(texts, [*texts[1:], ""], strict=True))
    if "-delete" not in texts and not runs_rm:
        return
    starts = []
    for t in texts:
        if t.startswith(("-", "(", "!")):
            break
        starts.append(t)
    broad = any(s in ("/", "~", "..", "$HOME") or s.startswith(("/", "~", "../")) for s in starts)
    filters = [v for t, v in zip(texts, [*texts[1:], ""], strict=True) if t in _FIND_FILTERS and v not in ("*", "*.*")]
    if broad or not filters:
        yield hit(inv, POINT, f"{show(inv)} deletes everything under {starts[0] if starts else '.'}")
