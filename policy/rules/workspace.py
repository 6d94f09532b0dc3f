"""Point 1 for commands: the paths a command reads, writes or moves into stay in the workspace.

Which arguments are paths depends on the command: every operand of ``cp``, ``cat`` or ``rm``;
not the pattern of ``grep`` or the script of ``sed``; nothing of ``echo``. For commands the rules
do not know, an argument counts when it clearly names a place outside (``/etc/x``, ``~/x``,
``../x``) or contains a ``/`` (it may cross a symlink that points outside).
"""

from __future__ import annotations

from collections.abc import Iterator

from policy.invocation import Invocation
from policy.paths import looks_like_system_path, path_problem
from policy.rules.base import Context, Hit, hit
from policy.tokens import Word
from policy.words import operands, subcommand

POINT = 1
PATH_ARGS = frozenset(
    [
        "cd", "pushd", "ls", "cat", "head", "tail", "less", "more", "touch", "mkdir", "rmdir", "rm", "cp", "mv", "ln",
        "tee", "stat", "file", "du", "wc", "diff", "cmp", "chmod", "chown", "chgrp", "truncate", "shred", "install",
        "source", ".", "realpath", "readlink", "unlink", "nl", "tac", "od", "xxd", "hexdump", "strings", "md5sum",
        "sha1sum", "sha256sum", "sha512sum", "zip", "unzip", "gzip", "gunzip", "bzip2", "bunzip2", "xz", "unxz", "tar",
        "rsync", "find", "tree", "bat", "sort", "uniq", "cut", "paste", "split", "dd", "vim", "vi", "nvim", "nano",
        "emacs", "code", "patch",
    ]
)
PATTERN_FIRST = frozenset({"grep", "egrep", "fgrep", "rg", "ag", "ack", "sed", "awk", "gawk", "mawk", "jq", "yq"})
WRITE_ALL = frozenset({"rm", "rmdir", "touch", "mkdir", "tee", "truncate", "shred", "unlink", "mv", "chmod",
                       "chown", "chgrp", "patch"})
WRITE_LAST = frozenset({"cp", "install", "ln", "rsync"})
DATA_ONLY = frozenset({"echo", "printf", "true", "false", ":", "test", "[", "[[", "export", "alias", "for", "case"})
_WRITE_REDIRECTS = frozenset({">", ">>", ">|", "&>", "&>>", "<>", ">&"})
_READ_REDIRECTS = frozenset({"<"})
_BIN_DIRS = ("/bin/", "/usr/bin/", "/usr/local/bin/", "/sbin/", "/usr/sbin/", "/opt/homebrew/bin/")


def check(inv: Invocation, ctx: Context) -> Iterator[Hit]:
    if not inv.wrappers:  # redirections belong to the outermost command of a line: check them once
        yield from _redirects(inv, ctx)
    if inv.argv0 is not None and ("/" in inv.argv0.text or inv.argv0.tilde):
        yield from _argv0(inv, ctx)
    if inv.name in ("cd", "pushd"):
        yield from _cd(inv, ctx)
        return
    if inv.name == "git" and subcommand(inv.args)[0] == "config" and any(
        a.text in ("--global", "--system") or a.text.startswith("--file") for a in inv.args
    ):
        yield hit(inv, POINT, f"`{inv.normalized[:50]}` writes git settings outside the workspace")
    for word, write in _path_args(inv):
        yield from _check(inv, ctx, word, write)


def _check(inv: Invocation, ctx: Context, word: Word, write: bool) -> Iterator[Hit]:
    text = word.text
    if word.dynamic and text.startswith(("$", "`")) and not text.startswith(("$HOME", "${HOME")):
        if write:
            yield hit(inv, POINT, f"`{inv.name}` writes to {word.raw!r}, a path only known at run time")
        return
    for cwd in inv.cwds:
        reason = path_problem(text, cwd, ctx.root, write)
        if reason:
            verb = "writes to" if write else "uses"
            yield hit(inv, POINT, f"`{inv.name}` {verb} {reason}")
            return


def _redirects(inv: Invocation, ctx: Context) -> Iterator[Hit]:
    for r in inv.cmd.redirects:
        if r.target is None or r.op not in _WRITE_REDIRECTS | _READ_REDIRECTS:
            continue
        if r.op == ">&" and (r.target.text.isdigit() or r.target.text == "-"):
            continue  # 2>&1: a file descriptor, not a path
        write = r.op in _WRITE_REDIRECTS
        for reason in _reasons(r.target, inv, ctx, write):
            verb = "writes to" if write else "reads"
            yield hit(inv, POINT, f"redirection {r.op} {verb} {reason}")


def _reasons(word: Word, inv: Invocation, ctx: Context, write: bool) -> Iterator[str]:
    if word.dynamic and word.text.startswith(("$", "`")) and not word.text.startswith(("$HOME", "${HOME")):
        if write:
            yield f"{word.raw!r}, a path only known at run time"
        return
    for cwd in inv.cwds:
        reason = path_problem(word.text, cwd, ctx.root, write)
        if reason:
            yield reason
            return


def _argv0(inv: Invocation, ctx: Context) -> Iterator[Hit]:
    assert inv.argv0 is not None
    text = inv.argv0.text
    if text.startswith(_BIN_DIRS):
        return  # /usr/bin/python3 is the system's program, not a path the step touches
    for cwd in inv.cwds:
        reason = path_problem(text, cwd, ctx.root, write=False)
        if reason:
            yield hit(inv, POINT, f"runs the program {reason}")
            return


def _cd(inv: Invocation, ctx: Context) -> Iterator[Hit]:
    targets = [a for a in inv.args if not a.text.startswith("-") or a.text == "-"]
    if not targets:
        yield hit(inv, POINT, f"`{inv.name}` with no directory goes to the home directory, outside the workspace")
        return
    target = targets[0]
    if inv.cd_dir is not None:  # cd "$(dirname "$0")/.." in a script: a known directory
        if reason := path_problem(inv.cd_dir, ".", ctx.root, write=False):
            yield hit(inv, POINT, f"`{inv.name}` goes to {reason}")
    elif target.text == "-":
        yield hit(inv, POINT, f"`{inv.name} -` goes back to a directory the rules cannot know")
    elif target.dynamic and not looks_like_system_path(target.text):
        yield hit(inv, POINT, f"`{inv.name} {target.raw}` goes to a directory only known at run time")
    else:
        for cwd in inv.cwds:
            reason = path_problem(target.text, cwd, ctx.root, write=False)
            if reason:
                yield hit(inv, POINT, f"`{inv.name}` goes to {reason}")
                return


def _path_args(inv: Invocation) -> list[tuple[Word, bool]]:
    """(argument, is it written) for each argument that names a path."""
    name, args = inv.name, inv.args
    if name in DATA_ONLY or not name:
        return []
    ops = operands(args)
    values = [Word(a.raw, a.text.split("=", 1)[1]) for a in args if a.text.startswith("-") and "=" in a.text]
    if name == "dd":
        return [(Word(a.raw, a.text[3:]), a.text.startswith("of=")) for a in args if a.text.startswith(("if=", "of="))]
    if name in PATTERN_FIRST:
        explicit = any(a.text in ("-e", "-f", "--regexp", "--file", "--expression") for a in args)
        files = ops if explicit else ops[1:]
        in_place = name == "sed" and any(a.text.startswith(("-i", "--in-place")) for a in args)
        return [(w, in_place) for w in files] + [(v, False) for v in values]
    if name in PATH_ARGS:
        if name in ("chmod", "chown", "chgrp") and ops:
            ops = ops[1:]  # the mode or owner
        out = [(w, name in WRITE_ALL or (name in WRITE_LAST and i == len(ops) - 1)) for i, w in enumerate(ops)]
        return out + [(v, False) for v in values]
    if name == "git":
        git_dirs = [args[i + 1] for i, a in enumerate(args[:-1]) if a.text == "-C"]
        return [(w, False) for w in git_dirs] + [(w, False) for w in _generic(args)]
    return [(w, False) for w in _generic(args)]


def _generic(args: list[Word]) -> list[Word]:
    out: list[Word] = []
    for a in args:
        text = a.text.split("=", 1)[1] if a.text.startswith("-") and "=" in a.text else a.text
        if not text or "://" in text or any(c.isspace() for c in text) or text.startswith("-"):
            continue
        if looks_like_system_path(text) or ("/" in text and not a.dynamic):
            out.append(Word(a.raw, text, dynamic=a.dynamic))
    return out
