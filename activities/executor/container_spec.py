"""What a request's container is: every isolation property, in the arguments of
``containers.create``, shared by the executor and ``iter executor check``. Nothing here talks to
the engine.

The container has the workspace bind-mounted read-write at the same path and nothing else
writable but a tmpfs ``/tmp`` and the request's stream directory; no network; the workspace
owner's uid:gid; no capabilities; no-new-privileges; pids, memory and CPU limits. Its name and
labels come from the request key, so a retried activity on another worker finds it, and the sweep
at worker start knows whose it is. A network step's own container has the same spec, on the
network ``executor.network``, and is labelled ``iter.step`` with the step's run key.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from docker.types import Mount

from models.config import ExecutorSettings

LABEL_REQUEST = "iter.request"
LABEL_WORKSPACE = "iter.workspace"
LABEL_MANAGED = "iter.executor"
LABEL_STEP = "iter.step"  # only on a network step's own container: the step's run key
TMPFS_MB = 512
# PID 1 of every container: a shell that reaps orphans (so zombies never eat the pids limit) and
# restarts its idle child, so killing every step process with ``kill -1`` never stops the container.
IDLE_INIT = 'trap "exit 0" TERM; while :; do sleep 2147483647 & wait $!; done'
# What a step sees: no variable of the worker's environment crosses into the container.
CONTAINER_ENV = {
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ITER_STEP": "1",
}
NAME_MAX = 120


def container_name(request_key: str) -> str:
    """Deterministic, valid for Docker, unique per key even when the readable part is cut."""
    readable = re.sub(r"[^a-zA-Z0-9_.-]", "-", request_key)[:NAME_MAX]
    digest = hashlib.sha256(request_key.encode()).hexdigest()[:10]
    return f"iter-{readable}-{digest}"


def workspace_owner(workspace: Path) -> tuple[int, int]:
    st = workspace.stat()
    return st.st_uid, st.st_gid


def hand_over(folder: Path, workspace: Path) -> None:
    """Give a folder the worker made to the workspace owner, as whom steps run: only a worker
    running as root (CI) makes folders another user's steps could not write."""
    owner = workspace_owner(workspace)
    if os.geteuid() == 0 and owner != (0, 0):
        os.chown(folder, *owner)


def step_container_name(request_key: str, network_step: str | None) -> str:
    """The request's container, or a network step's own (``/`` is in no run id nor run key)."""
    return container_name(request_key if network_step is None else f"{request_key}/{network_step}")


def workspace_mounts(workspace: Path, target: str, streams: Path) -> list[Mount]:
    """The workspace read-write, but iter's own files in it (policy, hooks, the project) read-only:
    a step cannot rewrite the rules that judge the next one. Besides, only the request's stream
    directory is writable, for its wrappers' output; its journal is mounted nowhere."""
    source = workspace.resolve()
    for folder in (source / ".iter", streams):
        if not folder.is_dir():
            folder.mkdir(parents=True)
            hand_over(folder, workspace)
    return [
        Mount(target=target, source=str(source), type="bind", read_only=False),
        Mount(target=f"{target}/.iter", source=str(source / ".iter"), type="bind", read_only=True),
        *git_mounts(source, target),
        Mount(target=str(streams), source=str(streams), type="bind", read_only=False),
    ]


def git_mounts(source: Path, target: str) -> list[Mount]:
    """The repository's git directory read-only: a step can read history, but never write a hook,
    a config (``core.fsmonitor``), a ref or the index that iter's own git commands on the host use.
    A worktree's ``.git`` is a file naming its admin folder inside the repository's git directory:
    that file is read-only too, and the git directory appears at its own path, read-only."""
    dot = source / ".git"
    if dot.is_dir() and not dot.is_symlink():
        return [Mount(target=f"{target}/.git", source=str(dot), type="bind", read_only=True)]
    if not dot.is_file() or dot.is_symlink():
        return []
    mounts = [Mount(target=f"{target}/.git", source=str(dot), type="bind", read_only=True)]
    common = common_git_dir(dot)
    if common is not None:
        mounts.append(Mount(target=str(common), source=str(common), type="bind", read_only=True))
    return mounts


def common_git_dir(dot_git_file: Path) -> Path | None:
    """The repository's git directory, from a worktree's ``.git`` file (``gitdir: <admin>``, whose
    ``commondir`` names the shared git directory)."""
    text = dot_git_file.read_text(errors="replace").strip()
    if not text.startswith("gitdir:"):
        return None
    admin = (dot_git_file.parent / text[len("gitdir:") :].strip()).resolve()
    try:
        common = (admin / (admin / "commondir").read_text().strip()).resolve()
    except OSError:
        return admin
    return common if common.is_dir() else None


def container_spec(
    settings: ExecutorSettings, workspace: Path, request_key: str, streams: Path, network_step: str | None = None
) -> dict[str, Any]:
    """The arguments of ``containers.create`` for a request: every isolation property in one place,
    shared by the executor and ``iter executor check``. With ``network_step`` (a run key), the same
    container for that one step, on ``settings.network``."""
    target = str(workspace.absolute())
    uid, gid = workspace_owner(workspace)
    memory = f"{settings.memory_mb}m"
    labels = {LABEL_MANAGED: "1", LABEL_REQUEST: request_key, LABEL_WORKSPACE: target}
    if network_step is not None:
        labels[LABEL_STEP] = network_step
    return {
        "image": settings.image,
        "name": step_container_name(request_key, network_step),
        "entrypoint": ["/bin/sh", "-c"],
        "command": [IDLE_INIT],
        "labels": labels,
        "user": f"{uid}:{gid}",
        "working_dir": target,
        "environment": CONTAINER_ENV,
        "mounts": workspace_mounts(workspace, target, streams),
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={TMPFS_MB}m,mode=1777"},
        "network_mode": "none" if network_step is None else settings.network,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": settings.pids_limit,
        "mem_limit": memory,
        "memswap_limit": memory,  # no swap: the memory limit is the limit
        "nano_cpus": int(settings.cpus * 1e9),
        "hostname": "iter-step",
        "ipc_mode": "private",
        "detach": True,
    }
