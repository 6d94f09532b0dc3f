#!/usr/bin/env bash
# A real headless Chromium for the dashboard's browser tests (tests/test_dashboard_browser.py):
# Debian's `chromium` package, driven by Playwright for Python pointed at /usr/bin/chromium.
# Idempotent. Never runs `playwright install`: the browser comes from apt, nothing is downloaded
# from anywhere else. Without root and without chromium, the browser tests skip with the reason.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
CHROMIUM=/usr/bin/chromium

log() { echo "chromium.sh: $*"; }

if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    log "installing Debian's chromium (apt-get install chromium)"
    apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    log "no $CHROMIUM and not root with apt: the browser tests will be skipped"
    exit 0
  fi
fi

if ! "$PY" -c "import playwright" >/dev/null 2>&1; then
  log "installing Playwright for Python"
  "$PY" -m pip install -q playwright
fi

VERSION="$("$CHROMIUM" --version 2>/dev/null | head -1 || true)"
[ -n "$VERSION" ] || { log "$CHROMIUM does not run"; exit 1; }
log "ready: $VERSION"
