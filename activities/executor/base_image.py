"""The executor's base image, made when it is missing (``iter executor build``): from a Debian
image pulled from a registry when one answers, or with debootstrap from Debian's packages when
none does (root and debootstrap needed, as in .ci/docker.sh). Each way reports its progress."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from activities.executor.docker_client import docker_client

REGISTRY_IMAGE = "debian:bookworm-slim"
SUITE = "bookworm"
# python-is-python3 and python3-pytest: plans verify with `python -m pytest`, which must work in the container.
PACKAGES = ("python3", "python-is-python3", "python3-pytest", "git")
BASE_DOCKERFILE = f"""FROM {REGISTRY_IMAGE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
    {" ".join(PACKAGES)} && rm -rf /var/lib/apt/lists/*
"""


class BaseImageError(Exception):
    """The base could be made neither way; the message says what to do."""


def make_base(tag: str, say: Callable[[str], None]) -> str:
    """Make ``tag``; returns how ("registry" or "debootstrap")."""
    if _pull(say):
        _build_from_registry(tag, say)
        return "registry"
    say(f"no registry answers for {REGISTRY_IMAGE}: making the base with debootstrap instead")
    _debootstrap(tag, say)
    return "debootstrap"


def _pull(say: Callable[[str], None]) -> bool:
    client = docker_client()
    say(f"pulling {REGISTRY_IMAGE}")
    try:
        repo, _, version = REGISTRY_IMAGE.partition(":")
        for line in client.api.pull(repo, tag=version, stream=True, decode=True):
            status = line.get("status", "")
            if status.startswith(("Downloading", "Extracting")) and line.get("progress"):
                say(f"{status} {line['progress']}")
            elif line.get("error"):
                return False
        client.images.get(REGISTRY_IMAGE)
        return True
    except Exception:  # no registry reachable, refused, timed out: debootstrap it is
        return False


def _build_from_registry(tag: str, say: Callable[[str], None]) -> None:
    client = docker_client()
    with tempfile.TemporaryDirectory(prefix="iter-base-") as folder:
        (Path(folder) / "Dockerfile").write_text(BASE_DOCKERFILE)
        for line in client.api.build(path=folder, tag=tag, rm=True, forcerm=True, decode=True):
            if line.get("error"):
                raise BaseImageError(f"building {tag} from {REGISTRY_IMAGE} failed: {line['error'].strip()}")
            text = str(line.get("stream", "")).strip()
            if text.startswith("Step "):
                say(text)


def _debootstrap(tag: str, say: Callable[[str], None]) -> None:
    if os.geteuid() != 0:
        raise BaseImageError(
            "making the base image with debootstrap needs root: run `sudo .venv/bin/iter executor build`, "
            "or `bash .ci/docker.sh`, or pass --base IMAGE (any Debian-based image with python3 and git)"
        )
    tool = shutil.which("debootstrap")
    if tool is None:
        raise BaseImageError("debootstrap is not installed: apt-get install debootstrap (or pass --base IMAGE)")
    root = Path(tempfile.mkdtemp(prefix="iter-base-"))
    try:
        say(f"debootstrap {SUITE} with {', '.join(PACKAGES)} (a minute or two; it prints each package)")
        args = [tool, "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root)]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        count, tail = 0, list[str]()
        for line in proc.stdout:
            tail = [*tail[-9:], line.rstrip()]
            if line.startswith("I: Unpacking") or line.startswith("I: Configuring"):
                count += 1
                if count % 10 == 0:
                    say(f"debootstrap: {count} package steps done ({line.strip()[3:]})")
        if proc.wait() != 0:
            raise BaseImageError("debootstrap failed:\n" + "\n".join(tail))
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        say(f"importing the file system as {tag}")
        command = f"tar -C {shlex.quote(str(root))} -c . | docker import - {shlex.quote(tag)}"
        done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True)
        if done.returncode != 0:
            raise BaseImageError(f"docker import failed: {done.stderr.strip()[-500:]}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
