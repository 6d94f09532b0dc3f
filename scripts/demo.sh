#!/usr/bin/env bash
# Quick start: install iter, copy the bundled example project to a folder of its own, add a
# feature request and run it through the whole pipeline against the configured model.
#   ITER_DEMO_DIR   where the example goes (default ~/iter-demo)
#   ITER_EXECUTOR   docker (default, needs a Docker engine and `iter executor build`) or local
# The model: Ollama on localhost:11434 by default; ITER_LLM_PROVIDER / ITER_LLM_BASE_URL /
# ITER_MODEL point iter elsewhere. With no model server up, iter says so and waits for one.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="${ITER_DEMO_DIR:-$HOME/iter-demo}"

if [ ! -x "$REPO/.venv/bin/iter" ]; then
  python3 -m venv "$REPO/.venv"
  "$REPO/.venv/bin/python" -m pip install -q -e "$REPO[docker]"
fi
export PATH="$REPO/.venv/bin:$PATH"

if [ ! -d "$DEMO" ]; then
  cp -r "$REPO/examples/calc" "$DEMO"
  git -C "$DEMO" init -q -b main
  git -C "$DEMO" add -A
  git -C "$DEMO" -c user.name=iter -c user.email=iter@localhost commit -qm "calc: the example project"
fi
cd "$DEMO"
if [ ! -f .iter/project.yaml ]; then
  iter project create --name calc --stack python
  iter feature add --name Arithmetic --type feature
  iter files select src/calc/ops.py tests/test_ops.py
  iter request add --feature arithmetic \
    --description "Add a multiply(a, b) function to calc.ops, export it from calc, and test it" \
    --criteria "multiply(3, 4) == 12" --criteria "the test suite passes"
fi
exec iter orchestrate --request req_01
