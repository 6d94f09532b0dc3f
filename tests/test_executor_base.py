"""`iter executor build` on a machine whose Docker has no base image: it makes the base (a registry's
Debian when one answers, debootstrap otherwise), saying what it does, then the executor image."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.cli import iter_cmd

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]


def test_executor_build_makes_a_missing_base(tmp_path: Path, docker_image: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    base, image = f"iter-test-base-{suffix}:latest", f"iter-test-executor-{suffix}:latest"
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "c"), "NO_COLOR": "1"}
    try:
        done = iter_cmd(tmp_path, env, "executor", "build", "--base", base, "--tag", image, timeout=850)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"The base image {base} is missing: making it first" in done.stdout
        assert "debootstrap" in done.stdout or "pulling" in done.stdout  # it says how, as it goes
        ran = subprocess.run(["docker", "run", "--rm", "--network", "none", image, "python", "-m", "pytest",
                              "--version"], capture_output=True, text=True, timeout=120)  # fmt: skip
        assert ran.returncode == 0, ran.stderr
    finally:
        subprocess.run(["docker", "image", "rm", "-f", image, base], capture_output=True, timeout=120)
