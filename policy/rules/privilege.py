"""Point 6: privilege. Steps run as an unprivileged user and stay one.

Blocked: ``sudo``/``su``/``doas`` and friends; ``chmod`` that makes files world-writable (``777``,
``a+rwx``, ``o+w``) or sets setuid/setgid (``u+s``, ``4755``); ``chown`` (only root may give files
away); the Docker socket, privileged or host-namespace containers, host mounts; system package
managers, services, users, kernel modules and mounts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from policy.invocation import Invocation
from policy.paths import is_inside
from policy.rules.base import Context, Hit, hit, show
from policy.rules.packages import SYSTEM_MANAGERS, install
from policy.words import operands, subcommand

POINT = 6
_ESCALATE = frozenset({"sudo", "su", "doas", "run0", "pkexec", "runuser", "sg", "newgrp", "chroot", "nsenter",
                       "unshare", "setcap", "capsh", "setpriv"})
_SCHEDULERS = frozenset({"at", "batch", "systemd-run"})
_SYSTEM = frozenset({"mount", "umount", "insmod", "rmmod", "modprobe", "useradd", "usermod", "userdel", "groupadd",
                     "groupmod", "passwd", "chpasswd", "visudo", "iptables", "ip6tables", "nft", "ufw", "swapon",
                     "swapoff", "systemctl", "service", "launchctl", "update-rc.d", "chattr", "setenforce"})
_OWNERS = frozenset({"chown", "chgrp"})
_HOST_NS = re.compile(r"^--(pid|net|network|ipc|uts|userns|cgroupns)(=|$)")
_CONTAINER_RUN = frozenset({"run", "create", "exec"})
# git settings whose value is a program git runs
_GIT_RUNS = re.compile(r"^(core\.(hookspath|fsmonitor|sshcommand|pager|editor|askpass|gitproxy|alternaterefsCommand)"
                       r"|diff\.(external|[^.]+\.(textconv|command))|merge\.[^.]+\.driver|filter\.[^.]+\.(clean|smudge|process)"
                       r"|credential(\..+)?\.helper|gpg(\.[^.]+)?\.program|sequence\.editor|alias\..+"
                       r"|uploadpack\.packobjectshook"
                       r"|include\.path|includeif\..+|protocol\.[^.]+\.allow|url\..+)$", re.I)
_GIT_ENV = re.compile(r"^(GIT_CONFIG_(COUNT|KEY_\d+|VALUE_\d+|PARAMETERS|GLOBAL|SYSTEM)|GIT_EXTERNAL_DIFF"
                      r"|GIT_SSH(_COMMAND)?|GIT_PAGER|GIT_EDITOR|GIT_SEQUENCE_EDITOR|GIT_ASKPASS|GIT_PROXY_COMMAND|GIT_EXEC_PATH|GIT_TEMPLATE_DIR)=")
_DOCKER_API = re.compile(r"(^|[/@:])(localhost|127\.0\.0\.1|0\.0\.0\.0|\[?::1\]?)?:237[56]\b|docker\.sock")


def check(inv: Invocation, ctx: Context) -> Iterator[Hit]:
    name = inv.name
    if name in _ESCALATE:
        yield hit(inv, POINT, f"`{name}` runs commands with other (usually root) privileges")
    elif name in _SYSTEM:
        yield hit(inv, POINT, f"{show(inv)} changes the system, which needs root")
    elif name == "sysctl" and any(a.text == "-w" or "=" in a.text for a in inv.args):
        yield hit(inv, POINT, f"{show(inv)} changes kernel settings")
    elif name in _SCHEDULERS or (name == "crontab" and inv.texts not in (["-l"], ["-e"])):
        yield hit(inv, POINT, f"{show(inv)} schedules commands that run outside the step")
    elif name in _OWNERS:
        yield hit(inv, POINT, f"{show(inv)} changes file ownership, which needs root")
    elif name in ("chmod", "install"):
        yield from _modes(inv)
    elif name in ("docker", "podman", "nerdctl"):
        yield from _container(inv, ctx)
    found = install(inv)
    if found is not None and found.manager in SYSTEM_MANAGERS:
        yield hit(inv, POINT, f"{show(inv)} installs system packages, which needs root")
    for w in [*inv.args, *(r.target for r in inv.cmd.redirects if r.target is not None)]:
        if "docker.sock" in w.text:
            yield hit(inv, POINT, f"{show(inv)} uses the Docker socket, which is root on the host")
            break
    settings = [*inv.cmd.assigns, *(a for a in inv.args if inv.name == "env" and "=" in a.text)]
    for assign in settings:
        if assign.text.startswith(("LD_PRELOAD=", "LD_LIBRARY_PATH=/", "LD_AUDIT=")):
            yield hit(inv, POINT, f"sets {assign.text.split('=', 1)[0]}, injecting code into every program")
        elif _GIT_ENV.match(assign.text):
            yield hit(inv, POINT, f"sets {assign.text.split('=', 1)[0]}, so git runs a command of the plan's choosing")
        elif assign.text.startswith("DOCKER_HOST="):
            yield hit(inv, POINT, "sets DOCKER_HOST: the Docker API is root on the host")
    if inv.name == "git":
        yield from _git_config(inv)
    if any(_DOCKER_API.search(t) for t in inv.texts):
        yield hit(inv, POINT, f"{show(inv)} talks to the Docker API, which is root on the host")


def _git_config(inv: Invocation) -> Iterator[Hit]:
    """``git config core.hooksPath x``, ``git -c diff.external=x diff``: settings that make git run
    a program; the hook or helper then runs with no review, outside any step."""
    texts = inv.texts
    inline = [texts[i + 1] for i, t in enumerate(texts[:-1]) if t == "-c"]
    sub, rest = subcommand(inv.args, frozenset({"-C", "-c", "--git-dir", "--work-tree"}))
    keys = [k.split("=", 1)[0] for k in inline]
    if sub == "config":
        keys += [t for t in (w.text for w in rest) if not t.startswith("-")][:1]
    for key in keys:
        if _GIT_RUNS.search(key.lower()):
            yield hit(inv, POINT, f"{show(inv)} sets {key}, so git runs a command of the plan's choosing")
            return


def _modes(inv: Invocation) -> Iterator[Hit]:
    if inv.name == "install":
        texts = inv.texts
        modes = [texts[i + 1] for i, t in enumerate(texts[:-1]) if t in ("-m", "--mode")]
        modes += [t.split("=", 1)[1] for t in texts if t.startswith("--mode=")]
    else:
        ops = operands(inv.args)
        dashed = [a.text[1:] for a in inv.args if re.fullmatch(r"-[rwxXst]+", a.text)]  # chmod -w is a mode too
        modes = [ops[0].text] if ops else []
        modes += dashed
    for mode in modes:
        why = mode_problem(mode)
        if why:
            yield hit(inv, POINT, f"{show(inv)} {why}")
            return


def mode_problem(mode: str) -> str | None:
    """Why a chmod mode escalates privilege: world-writable or setuid/setgid."""
    if re.fullmatch(r"[0-7]+", mode):
        bits = int(mode, 8)
        if bits & 0o6000:
            return f"sets the setuid/setgid bit (mode {mode})"
        if bits & 0o002:
            return f"makes files writable by everyone (mode {mode})"
        return None
    for clause in mode.split(","):
        m = re.fullmatch(r"([ugoa]*)([-+=])([rwxXstugo]*)", clause)
        if not m:
            continue
        who, op, perms = m.groups()
        if op == "-":
            continue
        if "s" in perms:
            return f"sets the setuid/setgid bit ({clause})"
        if "w" in perms and ("o" in who or "a" in who):
            return f"makes files writable by everyone ({clause})"
    return None


def _container(inv: Invocation, ctx: Context) -> Iterator[Hit]:
    sub, rest = subcommand(inv.args, frozenset({"-H", "--host", "--context", "-c", "--config"}))
    if sub not in _CONTAINER_RUN:
        return
    texts = [a.text for a in rest]
    for i, t in enumerate(texts):
        value = t.split("=", 1)[1] if "=" in t else (texts[i + 1] if i + 1 < len(texts) else "")
        if t == "--privileged" or t.startswith(("--cap-add", "--device")):
            yield hit(inv, POINT, f"{show(inv)} gives the container host privileges ({t})")
            return
        if _HOST_NS.match(t) and value == "host":
            yield hit(inv, POINT, f"{show(inv)} shares a host namespace ({t.split('=')[0]}=host)")
            return
        if t.startswith("--security-opt") and ("unconfined" in value or "no-new-privileges=false" in value):
            yield hit(inv, POINT, f"{show(inv)} turns off container confinement")
            return
        if t in ("-v", "--volume", "--mount") or t.startswith(("--volume=", "--mount=")):
            source = _mount_source(t, value)
            if source.startswith("/") and not is_inside(source, ctx.root):
                yield hit(inv, POINT, f"{show(inv)} mounts the host path {source} into the container")
                return


def _mount_source(option: str, value: str) -> str:
    """The host side of ``-v SRC:DST`` or ``--mount type=bind,src=SRC,dst=DST``."""
    if option.startswith("--mount"):
        m = re.search(r"(?:src|source)=([^,]+)", value)
        return m.group(1) if m else ""
    return value.split(":", 1)[0]
