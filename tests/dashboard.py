"""Run ``iter dashboard`` as a user would (a subprocess), and find the URL it prints."""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.cli import ITER

START_TIMEOUT_S = 60.0


@dataclass
class Dashboard:
    url: str  # as printed, with ?token= when there is one
    base: str  # http://127.0.0.1:PORT
    token: str | None
    proc: subprocess.Popen[str]


def dashboard_env(temporal_address: str, tmp: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITER_")}
    env.update(
        {
            "ITER_TEMPORAL_ADDRESS": temporal_address,
            "ITER_DATA_DIR": f"{tmp}/data",
            "XDG_CONFIG_HOME": f"{tmp}/config",
            "NO_COLOR": "1",
            "COLUMNS": "300",
        }
    )
    return env


@contextmanager
def running_dashboard(env: dict[str, str], *args: str) -> Iterator[Dashboard]:
    """``iter dashboard --port 0 ARGS``; stopped (SIGTERM, then SIGKILL) when the block ends."""
    proc = subprocess.Popen(
        [ITER, "dashboard", "--port", "0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = _printed_url(proc)
        port = re.search(r":(\d+)/", url)
        assert port, url
        token = re.search(r"token=([A-Za-z0-9_-]+)", url)
        yield Dashboard(url, f"http://127.0.0.1:{port.group(1)}", token.group(1) if token else None, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _printed_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            seen.append(line)
            if line.startswith("Dashboard: "):
                return line.split(" ", 1)[1].strip()
        elif proc.poll() is not None:
            break
    raise AssertionError(f"`iter dashboard` printed no URL in {START_TIMEOUT_S:.0f} s; it printed: {''.join(seen)!r}")
